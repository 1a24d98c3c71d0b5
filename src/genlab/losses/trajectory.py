"""Social GAN's variety loss (Gupta et al. 2018), a pure function of predictions and the truth."""

from __future__ import annotations

from torch import Tensor


def variety_loss(predictions: Tensor, truth: Tensor) -> Tensor:
    """Best of k: predictions [K, N, A, T, 2], truth [N, A, T, 2] -> [N], each scene's least mean squared error
    over its K samples (mean over its people, steps and coordinates). Only the best sample is pulled towards
    the truth, so the others stay free to cover the other futures."""
    return (predictions - truth).pow(2).mean(dim=(2, 3, 4)).min(dim=0).values
