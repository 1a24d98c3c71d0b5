"""Feature extractors for the sample-quality metrics, and reference features cached on disk.

Two feature spaces, both as torch-fidelity ``FeatureExtractorBase`` modules so that the
same objects work in genlab's pure metric functions and in ``torch_fidelity.calculate_metrics``:

- ``inception-v3-compat``: torch-fidelity's port of the TensorFlow FID Inception-v3,
  whose numbers match the published reference implementation. Its weights come from
  the torch hub cache or an explicit path; nothing else is tried offline.
- ``genlab-mnist``: genlab's digit classifier (``genlab train-classifier``), registered
  with torch-fidelity under that name when this module is imported, so that
  ``torch_fidelity.calculate_metrics(feature_extractor="genlab-mnist",
  feature_extractor_weights_path=RUN, ...)`` works too. Inception features of 28-pixel digits upsampled
  to 299 pixels are a poor fit; this is the domain feature space for MNIST.

Every extractor takes uint8 ``[N, 3, H, W]`` images (grey replicated to RGB, as
torch-fidelity presents all inputs) and returns a tuple of float32 ``[N, D]`` features.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch_fidelity import FeatureExtractorBase, FeatureExtractorInceptionV3, register_feature_extractor
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genlab.errors import DataError
from genlab.images import to_model

INCEPTION = "inception-v3-compat"
MNIST = "genlab-mnist"

# torch-fidelity downloads its weights under the first name; pytorch-fid ships the same
# converted TF graph (same hash suffix) under the second. Either is accepted.
INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
PYTORCH_FID_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"

CACHE_ENV = "GENLAB_CACHE"
_DOWNLOAD_TIMEOUT_S = 30


def cache_dir() -> Path:
    """genlab's own cache: ``$GENLAB_CACHE`` or ``~/.cache/genlab``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "genlab").expanduser()


def classifier_dir() -> Path:
    """Where ``genlab train-classifier`` puts its runs and where the metrics look for one."""
    return cache_dir() / "classifiers"


@dataclass(frozen=True)
class Extractor:
    """A feature extractor with what an eval card must say about it."""

    name: str  # INCEPTION or MNIST
    module: FeatureExtractorBase
    weights: Path  # the file the weights were read from
    weights_sha256: str
    layers: dict[str, str]  # metric ("fid", "kid", "pr", "is") -> feature name

    def resize_mode(self, image_shape: tuple[int, ...]) -> str:
        """How images of ``image_shape`` (C, H, W) reach the network."""
        if self.name == INCEPTION:
            return f"{image_shape[-2]}x{image_shape[-1]} -> 299x299, TF1-compatible bilinear (torch-fidelity)"
        size = tuple(self.module.classifier.image_shape[1:])
        if tuple(image_shape[-2:]) == size:
            return f"none (native {size[0]}x{size[1]})"
        return f"{image_shape[-2]}x{image_shape[-1]} -> {size[0]}x{size[1]}, bilinear (antialiased when shrinking)"


# ----------------------------------------------------------------------------- Inception


def find_inception_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception-v3 weights file: ``path``, else the torch hub cache, else a download.

    Raises DataError, saying where to put the file, when it cannot be found or fetched.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise DataError(f"--inception-weights {path} does not exist. {_inception_help(hub)}")
        return path
    for name in INCEPTION_FILES:
        if (hub / name).is_file():
            return hub / name
    if download:
        target = hub / INCEPTION_FILES[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)  # torch.hub takes no timeout; a silent network must not hang
        try:
            torch.hub.download_url_to_file(URL_INCEPTION_V3, str(target), progress=False)
            return target
        except (urllib.error.URLError, OSError, ValueError) as err:  # offline, DNS, refused, timed out
            raise DataError(f"could not download the Inception-v3 weights ({err}). {_inception_help(hub)}") from None
        finally:
            socket.setdefaulttimeout(previous)
    raise DataError(f"the Inception-v3 weights are not in {hub}. {_inception_help(hub)}")


def _inception_help(hub: Path) -> str:
    return (
        f"FID/KID/IS with --features inception need the FID Inception-v3 weights, the file "
        f"{INCEPTION_FILES[1]} (about 91 MB, from {PYTORCH_FID_URL}; torch-fidelity's download of "
        f"the same converted weights, {INCEPTION_FILES[0]} from {URL_INCEPTION_V3}, is also accepted). On a machine with internet, "
        f"download it and put it in {hub} (the torch hub cache; $TORCH_HOME moves it), or pass "
        f"--inception-weights PATH. For 28-pixel digits, --features mnist needs no download."
    )


def inception_extractor(weights: str | Path | None = None, download: bool = True) -> Extractor:
    """torch-fidelity's ``inception-v3-compat`` with pool3 (2048) features and unbiased logits."""
    path = find_inception_weights(weights, download)
    try:
        # torch-fidelity unpickles the file without restriction; reading it with
        # weights_only=True first proves it holds nothing but tensors.
        torch.load(path, map_location="cpu", weights_only=True)
        module = FeatureExtractorInceptionV3(INCEPTION, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError) as err:  # not the right file
        raise DataError(f"{path} is not the FID Inception-v3 weights file ({type(err).__name__}: {err}). "
                        f"{_inception_help(Path(torch.hub.get_dir()) / 'checkpoints')}") from None
    layers = {"fid": "2048", "kid": "2048", "pr": "2048", "is": "logits_unbiased"}
    return Extractor(INCEPTION, module, path, file_sha256(path), layers)


# ----------------------------------------------------------------------------- MNIST classifier


def find_classifier_run(run: str | Path | None = None) -> Path:
    """The classifier run folder: ``run``, else the newest trained one in :func:`classifier_dir`."""
    from genlab.training.checkpoint import list_checkpoints

    if run is not None:
        return Path(run)
    candidates = sorted(p for p in classifier_dir().glob("*") if list_checkpoints(p / "checkpoints"))
    if not candidates:
        raise DataError(
            f"no trained MNIST classifier in {classifier_dir()}: the 'mnist' feature space needs one. "
            f"Train it with `genlab train-classifier` (a few minutes on 2 CPU cores) or pass --classifier RUN."
        )
    return candidates[-1]


class FeatureExtractorMNIST(FeatureExtractorBase):
    """genlab's digit classifier as a torch-fidelity feature extractor.

    Features: ``"features"`` (penultimate layer, for FID/KID/PR) and ``"logits"`` (for
    IS and class predictions). ``feature_extractor_weights_path`` is the classifier's run
    folder; None takes the newest one from :func:`classifier_dir`.
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kwargs) -> None:
        super().__init__(name, features_list)
        from genlab.api import load

        self.run_dir = find_classifier_run(feature_extractor_weights_path)
        self.classifier = load(self.run_dir)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "features", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "features", "kid": "features", "prc": "features"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """x: uint8 ``[N, 1 or 3, H, W]``; RGB is averaged to grey (exact for replicated grey)."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 [N, 1 or 3, H, W], got {x.dtype} {tuple(x.shape)}")
        x = x.float().mean(1, keepdim=True) if x.shape[1] == 3 else x.float()
        size = tuple(self.classifier.image_shape[1:])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=x.shape[-1] > size[-1])
        x = to_model(x.round().clamp(0, 255).to(torch.uint8).to(next(self.classifier.parameters()).device))
        feats = self.classifier.features(x)
        out = {"features": feats, "logits": self.classifier.head(feats)}
        return tuple(out[name].float() for name in self.features_list)


if MNIST not in FEATURE_EXTRACTORS_REGISTRY:  # re-import (e.g. importlib.reload) must not fail
    register_feature_extractor(MNIST, FeatureExtractorMNIST)


def mnist_extractor(run: str | Path | None = None) -> Extractor:
    """The digit classifier of ``run`` (default: the newest in :func:`classifier_dir`)."""
    from genlab.training.checkpoint import MODULES_FILE, latest_checkpoint

    module = FeatureExtractorMNIST(MNIST, ["features", "logits"], feature_extractor_weights_path=run)
    weights = latest_checkpoint(module.run_dir) / MODULES_FILE
    layers = {"fid": "features", "kid": "features", "pr": "features", "is": "logits"}
    return Extractor(MNIST, module, weights, file_sha256(weights), layers)


# ----------------------------------------------------------------------------- extraction


@torch.no_grad()
def extract_features(extractor: Extractor, images: Tensor, batch_size: int = 250, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Features of uint8 ``images: [N, C, H, W]`` (C = 1 or 3) -> {name: float32 ``[N, D]``} on the CPU.

    Per-image results: ``batch_size`` only bounds memory (and may change float rounding
    in the last bits).
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"expected uint8 [N, C, H, W] images, got {images.dtype} {tuple(images.shape)}")
    module = extractor.module.to(device)
    chunks: dict[str, list[Tensor]] = {name: [] for name in module.features_list}
    for batch in images.split(batch_size):
        if batch.shape[1] == 1:  # as torch-fidelity presents grey images: replicated to RGB
            batch = batch.expand(-1, 3, -1, -1)
        for name, value in zip(module.features_list, module(batch.to(device))):
            chunks[name].append(value.float().cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


@torch.no_grad()
def classifier_accuracy(extractor: Extractor, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of the digit classifier on uint8 ``images`` with int ``labels: [N]``."""
    logits = extract_features(extractor, images, batch_size)["logits"]
    return float((logits.argmax(1) == labels).double().mean())


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reference cache


def reference_features(extractor: Extractor, images: Tensor, dataset: str, split: str, batch_size: int = 250,
                       device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Features of a real split, cached in ``<cache>/reference/`` as safetensors.

    The key names the dataset, split and resolution for people, and is made exact by a
    hash of the images themselves (limit, resizing and channel changes all alter it) and
    of the extractor's weights.
    """
    content = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
    c, h, w = images.shape[1:]
    key = f"{dataset}-{split}-{len(images)}x{c}x{h}x{w}-{content}-{extractor.name}-{extractor.weights_sha256[:16]}"
    path = cache_dir() / "reference" / f"{key}.safetensors"
    if path.is_file():
        return load_file(path)
    feats = extract_features(extractor, images, batch_size, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in feats.items()}, tmp)
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return feats
