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


def side_by_side(*columns: torch.Tensor) -> Grid:
    """Row i shows example i of each column, left to right (pix2pix: source | output | target).

    columns: each [N, C, H, W] in [-1, 1] of one size; one-channel images are replicated to
    three so that grey and colour images share a grid.
    """
    rgb = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in columns]
    return Grid(torch.stack(rgb, dim=1).flatten(0, 1), len(columns))
