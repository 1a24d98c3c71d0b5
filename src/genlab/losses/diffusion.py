"""The denoising objective of diffusion and flow-matching models: a pure function of the net's
prediction and its target (the noise for DDPM's "simple" loss, Ho et al. 2020; the velocity for
flow matching, Lipman et al. 2023)."""

from __future__ import annotations

from torch import Tensor


def denoising_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Per-example mean squared error [N] over every pixel and channel (prediction, target: [N, C, H, W])."""
    return (prediction.float() - target.float()).square().flatten(1).mean(1)
