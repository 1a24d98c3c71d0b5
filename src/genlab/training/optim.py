"""Optimisers as every family builds them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def adam(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where the device has one (CPU and CUDA).

    The fused update is one pass over all parameters instead of a dozen elementwise ops
    per tensor: on the 2-core CPU it cuts the MNIST VAE's optimiser time from ~1.6 ms to
    ~0.25 ms a step. It is deterministic, so exact resume is unaffected.

    ``params`` may be parameter groups (dicts with their own ``lr``), as torch.optim takes them.
    """
    groups: list[Any] = list(params)
    tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in ("cpu", "cuda") for p in tensors)
    return torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=weight_decay, fused=fused)
