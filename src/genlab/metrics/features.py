"""Features, the first link of the metric chain: images -> float features per image.

Two feature spaces plug in here, both torch-fidelity ``FeatureExtractorBase`` modules so
that the same objects serve genlab's pure metric functions and ``torch_fidelity.calculate_metrics``:
Inception-v3 (:mod:`genlab.metrics.inception`) and the digit classifier
(:mod:`genlab.metrics.classifier_features`). Real splits' features are cached by
:mod:`genlab.metrics.reference`.

Every extractor takes uint8 ``[N, 3, H, W]`` images (grey replicated to RGB, as
torch-fidelity presents all inputs) and returns a tuple of float32 ``[N, D]`` features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_fidelity import FeatureExtractorBase


@dataclass(frozen=True)
class Extractor:
    """A feature extractor with what an eval card must say about it."""

    name: str  # the torch-fidelity name, e.g. "inception-v3-compat" or "genlab-mnist"
    module: FeatureExtractorBase
    weights: Path  # the file the weights were read from
    weights_sha256: str
    layers: dict[str, str]  # metric ("fid", "kid", "pr", "is") -> feature name
    resize_mode: Callable[[tuple[int, ...]], str]  # image shape (C, H, W) -> how it reaches the network
    provenance: dict[str, Any] = field(default_factory=dict)  # more for the card, e.g. the classifier's run


@torch.no_grad()
def extract_features(
    extractor: Extractor, images: Tensor, batch_size: int = 250, device: str | torch.device = "cpu"
) -> dict[str, Tensor]:
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
        for name, value in zip(module.features_list, module(batch.to(device)), strict=True):
            chunks[name].append(value.float().cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}
