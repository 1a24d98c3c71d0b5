"""Per-dimension latent traversals: vary one latent at a time around an encoded image."""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.images import Grid


@torch.no_grad()
def traverse(decode, z: Tensor, dims: list[int], values: Tensor) -> Tensor:
    """Decode ``z`` with each dim in ``dims`` set to each of ``values`` in turn.

    z: [D] base latent; values: [S]. Returns [len(dims) * S, C, H, W], one row per dim.
    """
    rows = z.repeat(len(dims), values.numel(), 1)  # [len(dims), S, D]
    for row, dim in enumerate(dims):
        rows[row, :, dim] = values.to(z)
    return decode(rows.flatten(0, 1))


@torch.no_grad()
def traversal_grid(vae, x: Tensor, steps: int = 9, span: float = 3.0) -> Grid:
    """Traverse every latent dim of a VAE from -span to +span around the posterior mean of x[0].

    One row per latent dimension, ``steps`` columns; x: [1, C, H, W] in [-1, 1].
    """
    mu = vae.encode(x[:1])[0][0]
    dims = list(range(vae.latent_dim))
    values = torch.linspace(-span, span, steps)
    return Grid(traverse(vae.decode, mu, dims, values), steps)
