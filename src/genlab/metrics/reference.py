"""Features of real splits, computed once per data and extractor and cached on disk."""

from __future__ import annotations

import hashlib
import os

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from genlab.metrics.features import Extractor, extract_features
from genlab.runs.locations import cache_dir


def reference_features(
    extractor: Extractor,
    images: Tensor,
    dataset: str,
    split: str,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
) -> dict[str, Tensor]:
    """Features of a real split (uint8 ``images: [N, C, H, W]``), cached in ``<cache>/reference/`` as safetensors.

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
