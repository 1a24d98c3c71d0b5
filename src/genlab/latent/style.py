"""Tools of style-based generators (:class:`~genlab.models.protocols.StyleBased`, e.g. StyleGAN): samples
truncated in W, the style-mixing grid of Karras et al. (2019), Figure 3, and :class:`WSpace`, which
lets every latent tool (interpolation, traversal, arithmetic, inversion, edits) work in W.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.models.protocols import StyleBased, as_module, eval_mode


def require_style_based(model: object) -> StyleBased:
    if not isinstance(model, StyleBased):
        raise ConfigError(
            f"a {type(model).__name__} has no mapping network and W space; truncation in W and style "
            "mixing need a style-based generator (model.name=stylegan)"
        )
    return model


class WSpace(nn.Module):
    """A style-based G seen through its W space, as a :class:`~genlab.models.protocols.LatentSampler`:
    latents are w = mapping(z) [N, w_dim] and decoding is the synthesis of that w at every layer.

    W is where StyleGAN's latent space is better behaved (Karras et al. 2019, section 4): paths
    between ws change images more evenly than paths between zs. Its prior is not a Gaussian, so
    interpolation defaults to lerp, and values are in w's own units (traverse with --relative).
    """

    noise = "w"  # not "normal": the latent tools then interpolate linearly

    def __init__(self, G: StyleBased) -> None:
        super().__init__()
        self.G, self.latent_dim, self.image_shape = G, G.w_dim, G.image_shape

    @torch.no_grad()
    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        return self.G.mapping(self.G.latents(n, generator, truncation))

    def decode(self, w: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is not None:
            raise ConfigError("this style-based generator is not class-conditional; use it without a class")
        return self.G.synthesis(self.G.broadcast(w))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        return self.decode(self.latents(n, generator, truncation), labels)


def check_psi(psi: float) -> float:
    if not 0.0 <= psi <= 2.0:  # NaN too
        raise ConfigError(f"psi is the truncation in W, 1 for none and 0 for the mean image; use 0..2, got {psi}")
    return psi


@torch.no_grad()
def sample_w(model: StyleBased, z: Tensor, psi: float = 1.0) -> Tensor:
    """Images of latents ``z`` [N, latent_dim] with w truncated towards the mean w by ``psi``."""
    with eval_mode(as_module(model)):
        return model.synthesis(model.broadcast(model.truncate(model.mapping(z), check_psi(psi))))


@torch.no_grad()
def mixing_grid(model: StyleBased, rows: Tensor, columns: Tensor, crossover: int, psi: float = 1.0) -> Grid:
    """Karras et al.'s style-mixing figure: the top row holds ``columns``' images, the left column
    ``rows``' images, and cell (i, j) takes row i's styles for layers before ``crossover`` (coarse:
    pose, shape) and column j's after it (fine: colour, texture). A blank corner tops it off."""
    with eval_mode(as_module(model)):
        top = sample_w(model, columns, psi)
        cells = [torch.full_like(top[:1], 1.0), top]
        for z in rows:
            cells.append(sample_w(model, z[None], psi))
            cells.append(model.mix(z[None].expand(len(columns), -1), columns, crossover, check_psi(psi)))
        return Grid(torch.cat(cells), len(columns) + 1)
