"""Discrete images under per-sub-pixel categorical distributions: pure functions that models
(PixelCNN's log p(x)) and the likelihood objective both use, so they sit below both. Values in nats."""

from __future__ import annotations

import torch
from torch import Tensor


def value_indices(x: Tensor, levels: int) -> Tensor:
    """Images in [-1, 1] -> int64 value indices in 0..levels-1 (binarised images: 0 and 1)."""
    return ((x.float() + 1) / 2 * (levels - 1)).round().clamp(0, levels - 1).long()


def categorical_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x) [N] in nats: logits [N, C, levels, H, W] of each sub-pixel, images x [N, C, H, W] in [-1, 1]."""
    values = value_indices(x, logits.shape[2]).unsqueeze(2)
    return logits.float().log_softmax(dim=2).gather(2, values).flatten(1).sum(dim=1)


def bits_per_dim(log_p: Tensor, dims: int) -> Tensor:
    """Nats per image -> bits per sub-pixel: -log p / (dims ln 2)."""
    return -log_p / (dims * torch.log(torch.tensor(2.0)))


def inverse_cdf(logits: Tensor, u: Tensor) -> Tensor:
    """The value [N] (int64) whose CDF interval holds u [N] in [0, 1) under the categorical of logits [N, levels]:
    a draw when u is uniform, and a function of u, so that sampling noise fixes the sample."""
    cdf = logits.float().softmax(dim=1).cumsum(dim=1)
    value = torch.searchsorted(cdf, u[:, None].float().contiguous() * cdf[:, -1:])
    return value[:, 0].clamp(max=logits.shape[1] - 1)
