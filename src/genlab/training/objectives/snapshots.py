"""Snapshot grids that several families share."""

from __future__ import annotations

import torch

from genlab.images import Grid
from genlab.models.protocols import LatentSampler

SEEDS_PER_CLASS = 8


@torch.no_grad()
def class_grid(model: LatentSampler, seed: int, columns: int = SEEDS_PER_CLASS) -> Grid:
    """A class x seed grid of a conditional sampler: row k is class k, column j reuses latent j.

    Drawn from a generator seeded with ``seed``, so every snapshot shows the same latents.
    """
    k = model.num_classes
    z = model.latents(columns, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(k).repeat_interleave(columns)
    return Grid(model.decode(z.repeat(k, 1), labels.to(z.device)), columns)
