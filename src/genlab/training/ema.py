"""An exponential moving average of a network's weights: what GANs (Karras et al. 2018; Yazici et
al. 2019) and diffusion models (Ho et al. 2020) export instead of the raw network."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode (its update count lives in the step's state)."""
    return copy.deepcopy(model).requires_grad_(False).eval()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, updates: int) -> None:
    """ema <- d * ema + (1 - d) * model for parameters; buffers are the family's business (a GAN's
    batch norm gets standing statistics, genlab.training.objectives.gan.standing_statistics).

    d = min(decay, (1 + t) / (10 + t)) after t = ``updates`` earlier updates: a young average
    follows the model closely instead of dragging its random initialisation along for ~1 / (1 - decay) updates.
    """
    weight = 1.0 - min(decay, (1 + updates) / (10 + updates))
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p, weight)
