"""The FID Inception-v3 feature space: torch-fidelity's ``inception-v3-compat``.

torch-fidelity's port of the TensorFlow FID Inception-v3, whose numbers match the
published reference implementation. Its weights come from an explicit path, the torch hub
cache, or a download into that cache; nothing else is tried offline.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch_fidelity import FeatureExtractorInceptionV3
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from genlab.download import download as download_file
from genlab.errors import DataError
from genlab.metrics.features import Extractor
from genlab.runs.checkpoint import file_sha256

INCEPTION = "inception-v3-compat"

# torch-fidelity downloads its weights under the first name; pytorch-fid ships the same
# converted TF graph (same hash suffix) under the second. Either is accepted.
INCEPTION_FILES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
PYTORCH_FID_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)


def find_inception_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """The Inception-v3 weights file: ``path``, else the torch hub cache, else a download into it.

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
    if not download:
        raise DataError(f"the Inception-v3 weights are not in {hub}. {_inception_help(hub)}")
    # No checksum is pinned: none is published beyond the name's 8-digit suffix.
    # inception_extractor instead proves that the file holds nothing but tensors.
    try:
        return download_file(URL_INCEPTION_V3, hub / INCEPTION_FILES[0])
    except DataError as err:
        raise DataError(f"{err}. {_inception_help(hub)}") from None


def _inception_help(hub: Path) -> str:
    return (
        f"FID/KID/IS with --features inception need the FID Inception-v3 weights, the file "
        f"{INCEPTION_FILES[1]} (about 91 MB, from {PYTORCH_FID_URL}; torch-fidelity's download of "
        f"the same converted weights, {INCEPTION_FILES[0]} from {URL_INCEPTION_V3}, is also accepted). "
        f"On a machine with internet, download it and put it in {hub} (the torch hub cache; $TORCH_HOME moves it), "
        f"or pass --inception-weights PATH. For 28-pixel digits, --features mnist needs no download."
    )


def inception_extractor(weights: str | Path | None = None, download: bool = True) -> Extractor:
    """torch-fidelity's ``inception-v3-compat`` with pool3 (2048) features and unbiased logits."""
    path = find_inception_weights(weights, download)
    try:
        # torch-fidelity unpickles the file without restriction; reading it with
        # weights_only=True first proves it holds nothing but tensors.
        torch.load(path, map_location="cpu", weights_only=True)
        module = FeatureExtractorInceptionV3(
            INCEPTION, ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )
    except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError) as err:  # not the right file
        raise DataError(
            f"{path} is not the FID Inception-v3 weights file ({type(err).__name__}: {err}). "
            f"{_inception_help(Path(torch.hub.get_dir()) / 'checkpoints')}"
        ) from None
    layers = {"fid": "2048", "kid": "2048", "pr": "2048", "is": "logits_unbiased"}
    return Extractor(INCEPTION, module, path, file_sha256(path), layers, inception_resize_mode)


def inception_resize_mode(image_shape: tuple[int, ...]) -> str:
    return f"{image_shape[-2]}x{image_shape[-1]} -> 299x299, TF1-compatible bilinear (torch-fidelity)"
