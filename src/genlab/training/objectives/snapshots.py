"""Snapshot grids that several families share."""

from __future__ import annotations

import torch

from genlab.images import Grid
from genlab.models.protocols import Conditional, LatentSampler

SEEDS_PER_CLASS = 8


@torch.no_grad()
def class_grid(model: LatentSampler, seed: int, columns: int = SEEDS_PER_CLASS) -> Grid:
    """A class x seed grid of a conditional sampler: row k is class k, column j reuses latent j.

    Drawn from a generator seeded with ``seed``, so every snapshot shows the same latents.
    """
    assert isinstance(model, Conditional)  # a conditional sampler
    k = model.num_classes
    z = model.latents(columns, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(k).repeat_interleave(columns)
    return Grid(model.decode(z.repeat(k, 1), labels.to(z.device)), columns)


@torch.no_grad()
def traversal_grid(model: LatentSampler, z: torch.Tensor, steps: int = 9, span: float = 3.0) -> Grid:
    """One row per latent dimension of an unconditional sampler: ``z: [D]`` with that dimension
    set to each of ``steps`` values from -span to +span prior standard deviations.

    The training snapshot of :func:`genlab.latent.traverse.traversal`, which adds checks, chosen
    dimensions, offsets and classes for the latent tools.
    """
    rows = z.repeat(model.latent_dim, steps, 1)  # [D, steps, D]
    values = torch.linspace(-span, span, steps).to(z)
    for dim in range(model.latent_dim):
        rows[dim, :, dim] = values
    return Grid(model.decode(rows.flatten(0, 1)), steps)


def side_by_side(*columns: torch.Tensor) -> Grid:
    """Row i shows example i of each column, left to right (pix2pix: source | output | target).

    columns: each [N, C, H, W] in [-1, 1] of one size; one-channel images are replicated to
    three so that grey and colour images share a grid.
    """
    rgb = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c for c in columns]
    return Grid(torch.stack(rgb, dim=1).flatten(0, 1), len(columns))
