"""Per-dimension latent traversals: vary one latent at a time around a base latent.

Ranges are in prior standard deviations: every genlab prior has unit variance (N(0, I), or
the 2014 GAN's uniform option scaled to it), so the value s is s standard deviations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.latent.sample import decode
from genlab.models.protocols import LatentSampler


def check_dims(dims: Sequence[int], latent_dim: int) -> list[int]:
    """``dims`` as a list, each checked to be a dimension of a ``latent_dim``-dimensional latent."""
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise ConfigError(
            f"unknown latent dimension {bad[0]}: this model's latents have {latent_dim} "
            f"dimensions, numbered 0..{latent_dim - 1}"
        )
    if not dims:
        raise ConfigError("give at least one latent dimension")
    return list(dims)


def traversal_values(steps: int, span: float) -> Tensor:
    """``[steps]`` evenly spaced values from -span to +span prior standard deviations."""
    if steps < 2 or span <= 0:
        raise ConfigError(
            f"a traversal needs at least 2 steps and a positive span (in prior standard deviations); "
            f"got {steps} steps and span {span}"
        )
    return torch.linspace(-span, span, steps)


@torch.no_grad()
def traverse(
    decode_fn: Callable[[Tensor], Tensor], z: Tensor, dims: list[int], values: Tensor, relative: bool = False
) -> Tensor:
    """Decode ``z`` with each dim in ``dims`` set to (or, ``relative``, shifted by) each of ``values`` in turn.

    z: [D] base latent; values: [S]. Returns [len(dims) * S, C, H, W], one row per dim.
    """
    rows = z.repeat(len(dims), values.numel(), 1)  # [len(dims), S, D]
    for row, dim in enumerate(dims):
        rows[row, :, dim] = values.to(z) + (z[dim] if relative else 0.0)
    return decode_fn(rows.flatten(0, 1))


def traversal(
    model: LatentSampler,
    z: Tensor,
    dims: Sequence[int] | None = None,
    steps: int = 9,
    span: float = 3.0,
    relative: bool = False,
    label: int | None = None,
) -> Grid:
    """A grid with one row per dim (all by default) of ``steps`` decodes from -span to +span prior
    standard deviations (absolute values, or offsets from z with ``relative``); z: [D]."""
    dims = check_dims(range(model.latent_dim) if dims is None else dims, model.latent_dim)
    values = traversal_values(steps, span)
    return Grid(traverse(lambda rows: decode(model, rows, label), z, dims, values, relative), steps)
