"""Tools of style-based generators (:class:`~genlab.models.protocols.StyleBased`, e.g. StyleGAN): samples
truncated in W and the style-mixing grid of Karras et al. (2019), Figure 3.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.models.protocols import StyleBased, eval_mode


def require_style_based(model: nn.Module) -> StyleBased:
    if not isinstance(model, StyleBased):
        raise ConfigError(f"a {type(model).__name__} has no mapping network and W space; truncation in W and style "
                          "mixing need a style-based generator (model.name=stylegan)")
    return model


def check_psi(psi: float) -> float:
    if not 0.0 <= psi <= 2.0:  # NaN too
        raise ConfigError(f"psi is the truncation in W, 1 for none and 0 for the mean image; use 0..2, got {psi}")
    return psi


@torch.no_grad()
def sample_w(model: StyleBased, z: Tensor, psi: float = 1.0) -> Tensor:
    """Images of latents ``z`` [N, latent_dim] with w truncated towards the mean w by ``psi``."""
    with eval_mode(model):
        return model.synthesis(model.broadcast(model.truncate(model.mapping(z), check_psi(psi))))


@torch.no_grad()
def mixing_grid(model: StyleBased, rows: Tensor, columns: Tensor, crossover: int, psi: float = 1.0) -> Grid:
    """Karras et al.'s style-mixing figure: the top row holds ``columns``' images, the left column
    ``rows``' images, and cell (i, j) takes row i's styles for layers before ``crossover`` (coarse:
    pose, shape) and column j's after it (fine: colour, texture). A blank corner tops it off."""
    with eval_mode(model):
        top = sample_w(model, columns, psi)
        cells = [torch.full_like(top[:1], 1.0), top]
        for z in rows:
            cells.append(sample_w(model, z[None], psi))
            cells.append(model.mix(z[None].expand(len(columns), -1), columns, crossover, check_psi(psi)))
        return Grid(torch.cat(cells), len(columns) + 1)
