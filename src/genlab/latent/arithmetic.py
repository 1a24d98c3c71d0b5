"""Latent vector arithmetic, a - b + c (Radford et al. 2016, section 6.3: "smiling woman - neutral
woman + neutral man = smiling man").

As in the paper, each term is the mean of several latents (they averaged three exemplars,
as single samples gave unstable results), and the result is shown with small uniform noise
(+-0.25 in the paper) added to its latent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.latent.sample import decode
from genlab.models.protocols import LatentSampler


def vector_arithmetic(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """mean(a) - mean(b) + mean(c): each term ``[n_i, D]`` (n_i >= 1) -> ``[D]``."""
    for name, term in zip("abc", (a, b, c), strict=True):
        if term.dim() != 2 or term.shape[0] < 1 or term.shape[1] != a.shape[-1]:
            raise ConfigError(f"term {name} must be latents [n >= 1, {a.shape[-1]}], got {tuple(term.shape)}")
    return a.mean(0) - b.mean(0) + c.mean(0)


def jittered(z: Tensor, n: int, scale: float, generator: torch.Generator) -> Tensor:
    """``[n, D]`` copies of ``z`` ``[D]`` plus uniform noise in [-scale, scale]."""
    noise = (torch.rand(n, z.shape[0], generator=generator) * 2 - 1) * scale
    return z + noise.to(z)


def arithmetic_grid(
    model: LatentSampler, a: Tensor, b: Tensor, c: Tensor, label: int | None = None, jitter: float = 0.25, seed: int = 0
) -> Grid:
    """Rows a, b, c: each term's exemplars, then the decode of its mean (at the end of the row);
    last row: the result, then the result with ``jitter`` noise. Terms ``[n_i, D]``; the rows are
    ``max(n_i) + 1`` images wide (at least 4), short rows padded with white."""
    result = vector_arithmetic(a, b, c)
    width = max(4, max(t.shape[0] for t in (a, b, c)) + 1)
    variations = jittered(result, width - 1, jitter, torch.Generator().manual_seed(seed))
    rows = [torch.cat([term, term.mean(0, keepdim=True)]) for term in (a, b, c)]
    rows.append(torch.cat([result[None], variations]))
    images = [decode(model, row, label) for row in rows]
    blank = torch.ones_like(images[0][:1])  # white, like the grid's padding
    padded = [
        torch.cat([row[:-1], blank.expand(width - len(row), -1, -1, -1), row[-1:]]) if i < 3 else row
        for i, row in enumerate(images)
    ]
    return Grid(torch.cat(padded), width)
