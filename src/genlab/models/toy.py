"""Small MLP generator and discriminator for 1-D and 2-D toy mixtures.

The setting of the mode-collapse benchmarks (VEEGAN, Srivastava et al. 2017; PacGAN, Lin
et al. 2018): a 2-d Gaussian noise, a ReLU MLP generator and an MLP discriminator on the
points. Differences from PacGAN's code: narrower and shallower networks without batch norm
in G, and LeakyReLU units in D instead of maxout, so that a run fits a 2-core CPU.

Toy points are float ``[N, D]`` in data units, not images: G has no output squashing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Classes, Points, Spec, describe
from genlab.errors import ConfigError
from genlab.models.layers import Generator, Noise
from genlab.registry import register_model


@dataclass
class ToyMLPConfig(ModelConfig):
    name: str = "gan_toy_mlp"
    family: ClassVar[str] = "gan"
    latent_dim: int = 2
    noise: Noise = "normal"
    g_hidden: int = 128
    g_layers: int = 3  # hidden layers of G
    d_hidden: int = 128
    d_layers: int = 3  # hidden layers of D
    example_spec: ClassVar[Spec] = {"points": Points(2), "label": Classes(("a", "b"))}

    bounds: ClassVar[dict[str, Range]] = {
        key: at_least(1) for key in ("latent_dim", "g_hidden", "g_layers", "d_hidden", "d_layers")
    }


def mlp(sizes: list[int], activation: Callable[[], nn.Module]) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ToyGenerator(Generator):
    """z: [N, latent_dim] -> points [N, D], unbounded."""

    def __init__(self, dim: int, latent_dim: int, hidden: int, layers: int, noise: Noise = "normal") -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.noise = (dim,), latent_dim, noise
        self.net = mlp([latent_dim] + [hidden] * layers + [dim], nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """x: [N, D] -> logits [N]."""

    def __init__(
        self, dim: int, hidden: int, layers: int, activation: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.2)
    ) -> None:
        super().__init__()
        self.net = mlp([dim] + [hidden] * layers + [1], activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


@register_model("gan_toy_mlp", ToyMLPConfig)
def build_gan_toy_mlp(cfg: ToyMLPConfig, spec: Spec) -> dict:
    points = spec.get("points")
    if not isinstance(points, Points):
        raise ConfigError(
            f"gan_toy_mlp needs toy points, the data has {describe(spec)}; "
            "use a toy dataset or an image model such as dcgan"
        )
    return {
        "G": lambda: ToyGenerator(points.dim, cfg.latent_dim, cfg.g_hidden, cfg.g_layers, cfg.noise),
        "D": lambda: ToyDiscriminator(points.dim, cfg.d_hidden, cfg.d_layers),
    }
