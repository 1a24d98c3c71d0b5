"""genlab's classifiers as feature spaces: ``genlab-mnist``, the digit classifier, and
``genlab-sprites``, the sprites' attribute classifier (``configs/attribute_classifier.yaml``).

Inception features of 28-pixel digits upsampled to 299 pixels are a poor fit, and Inception
knows no sprites, so genlab trains its own classifiers (``genlab train-classifier`` for digits).
Importing this module registers the digit one with torch-fidelity under ``genlab-mnist``, so
that ``torch_fidelity.calculate_metrics(feature_extractor="genlab-mnist",
feature_extractor_weights_path=RUN, ...)`` works too.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genlab.config import DataConfig
from genlab.errors import DataError
from genlab.images import to_model
from genlab.metrics.features import Extractor, extract_features
from genlab.models import load
from genlab.models.classifier import DigitClassifier
from genlab.runs.checkpoint import EXPORT_WEIGHTS, file_sha256, latest_checkpoint, list_checkpoints
from genlab.runs.folder import read_records
from genlab.runs.locations import ZOO_PREFIX, cache_dir, reference, resolve, zoo_names

MNIST = "genlab-mnist"
SPRITES = "genlab-sprites"


def classifier_dir() -> Path:
    """Where ``genlab train-classifier`` puts its runs and where the metrics look for one."""
    return cache_dir() / "classifiers"


# The zoo's judges: every FID-MNIST and sprites figure is in their features unless --classifier names another.
ZOO_DIGITS = "mnist-classifier"
# Sprites have one attribute judge per background it learnt on: textured (color_sprites, the sprite GANs' data) and
# plain (sprites, under the text models' captions). Neither reads the other's shapes: the textured judge reads
# plain sprites' shape at chance (0.369, chance 0.33; docs/zoo.md).
ZOO_ATTRIBUTES = {"color_sprites": "sprites-attributes", "sprites": "sprites-attributes-plain"}


def sprite_judge(data: DataConfig) -> str:
    """The zoo's attribute classifier for runs on ``data``: the one trained on the same sprites (those under a
    captioned or paired set), the textured-sprites judge for any other data."""
    source = getattr(data, "base", data).name
    return ZOO_ATTRIBUTES.get(source, ZOO_ATTRIBUTES["color_sprites"])


def find_classifier_run(run: str | Path | None = None) -> Path:
    """The classifier run folder: ``run`` (a path or ``zoo:NAME``), else the zoo's digit classifier, so that the
    feature space is one network for everyone; without that entry, the newest trained in :func:`classifier_dir`."""
    if run is not None:
        return resolve(run)
    if ZOO_DIGITS in zoo_names():
        return resolve(ZOO_PREFIX + ZOO_DIGITS)
    candidates = sorted(p for p in classifier_dir().glob("*") if list_checkpoints(p / "checkpoints"))
    if not candidates:
        raise DataError(
            f"no MNIST classifier: the zoo has no {ZOO_DIGITS!r} and {classifier_dir()} holds none. "
            f"Train one with `genlab train-classifier` (a few minutes on 2 CPU cores) or pass --classifier RUN."
        )
    return candidates[-1]


class FeatureExtractorMNIST(FeatureExtractorBase):
    """A genlab classifier (the digit one by default) as a torch-fidelity feature extractor.

    Features: ``"features"`` (penultimate layer, for FID/KID/PR) and ``"logits"`` (for
    IS and class predictions). ``feature_extractor_weights_path`` is the classifier's run
    folder or ``zoo:NAME``; None takes the zoo's digit classifier (:func:`find_classifier_run`).
    """

    def __init__(
        self, name: str, features_list: list[str], feature_extractor_weights_path: str | Path | None = None, **kwargs
    ) -> None:
        super().__init__(name, features_list)
        self.run_dir = find_classifier_run(feature_extractor_weights_path)
        classifier = load(self.run_dir)
        assert isinstance(classifier, DigitClassifier), f"{self.run_dir} holds a {type(classifier).__name__}"
        self.classifier = classifier
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
        """x: uint8 ``[N, 1 or 3, H, W]``; RGB is averaged to grey for a grey classifier (exact for
        replicated grey), grey replicated for a colour one."""
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 [N, 1 or 3, H, W], got {x.dtype} {tuple(x.shape)}")
        channels = self.classifier.image_shape[0]
        x = x.float().mean(1, keepdim=True) if x.shape[1] > channels else x.float().expand(-1, channels, -1, -1)
        size = tuple(self.classifier.image_shape[1:])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=x.shape[-1] > size[-1])
        x = to_model(x.round().clamp(0, 255).to(torch.uint8).to(next(self.classifier.parameters()).device))
        feats = self.classifier.features(x)
        out = {"features": feats, "logits": self.classifier.head(feats)}
        return tuple(out[name].float() for name in self.features_list)

    def resize_mode(self, image_shape: tuple[int, ...]) -> str:
        """How images of ``image_shape`` (C, H, W) reach the classifier."""
        size = tuple(self.classifier.image_shape[1:])
        if tuple(image_shape[-2:]) == size:
            return f"none (native {size[0]}x{size[1]})"
        return f"{image_shape[-2]}x{image_shape[-1]} -> {size[0]}x{size[1]}, bilinear (antialiased when shrinking)"


if MNIST not in FEATURE_EXTRACTORS_REGISTRY:  # re-import (e.g. importlib.reload) must not fail
    register_feature_extractor(MNIST, FeatureExtractorMNIST)


def mnist_extractor(run: str | Path | None = None) -> Extractor:
    """The digit classifier of ``run`` (default: the newest in :func:`classifier_dir`)."""
    return _extractor(MNIST, run)


def sprites_extractor(run: str | Path | None, judge: str = ZOO_ATTRIBUTES["color_sprites"]) -> Extractor:
    """The sprites' attribute classifier of ``run`` (a run of configs/attribute_classifier.yaml; default: the
    zoo's ``judge``, see :func:`sprite_judge`): the feature space of FID, KID and precision/recall on sprites.
    Its logits are one head per attribute, not one distribution, so it offers no Inception Score."""
    if run is None and judge not in zoo_names():
        raise DataError(
            f"the 'sprites' feature space needs an attribute classifier and the zoo has no {judge!r}: train one "
            "with `genlab train configs/attribute_classifier.yaml` and pass its run folder as --classifier"
        )
    return _extractor(SPRITES, run if run is not None else ZOO_PREFIX + judge)


def _extractor(name: str, run: str | Path | None) -> Extractor:
    module = FeatureExtractorMNIST(name, ["features", "logits"], feature_extractor_weights_path=run)
    weights = latest_checkpoint(module.run_dir) / EXPORT_WEIGHTS  # what load() reads
    layers = {"fid": "features", "kid": "features", "pr": "features"}
    if len(module.classifier.head_sizes) == 1:
        layers["is"] = "logits"
    elif name == MNIST:
        targets = list(module.classifier.targets)
        raise DataError(f"{module.run_dir} predicts {targets}, not digits; name a digit classifier")
    provenance = {
        "classifier_run": reference(module.run_dir),
        "classifier_test_accuracy": recorded_accuracy(module.run_dir),
    }
    return Extractor(name, module, weights, file_sha256(weights), layers, module.resize_mode, provenance)


def recorded_accuracy(run_dir: Path) -> float | None:
    """The test accuracy ``genlab train-classifier`` recorded for this run, if any."""
    found = [r["accuracy"] for r in read_records(run_dir / "metrics.jsonl") if "accuracy" in r]
    return found[-1] if found else None


@torch.no_grad()
def classifier_accuracy(extractor: Extractor, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of the digit classifier on uint8 ``images`` with int ``labels: [N]``."""
    logits = extract_features(extractor, images, batch_size)["logits"]
    return float((logits.argmax(1) == labels).double().mean())
