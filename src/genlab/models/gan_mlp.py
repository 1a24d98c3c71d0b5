"""The MLP GAN of Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014), for MNIST.

Follows the paper's released pylearn2 config (github.com/goodfeli/adversarial, mnist.yaml):

- G: 100-d noise -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid, weights U(-0.05, 0.05), the
  output bias set to the logit of the data's mean pixel intensities. Noise enters only here.
- D: 784 -> maxout 240 units x 5 pieces -> maxout 240 x 5 -> one logit, weights U(-0.005,
  0.005), dropout on each layer's input (keep 0.8 on the image, 0.5 on hidden units).

Differences: the sigmoid output is rescaled to [-1, 1] (below); D returns a logit and the
loss applies the sigmoid (``genlab.losses.gan``); dropout is PyTorch's inverted dropout,
which is the paper's ``input_scales`` (1.25 and 2) applied at training instead of test time.
The optimiser (the paper: SGD with momentum 0.5 -> 0.7, lr 0.1 decaying) is the objective's.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

import torch
from torch import Tensor, nn

from genlab.config import ModelConfig
from genlab.data.base import TensorDataset
from genlab.errors import ConfigError
from genlab.models.layers import Generator, Maxout, Noise, init_uniform
from genlab.registry import register_model


@dataclass
class GANMLPConfig(ModelConfig):
    name: str = "gan_mlp"
    family: ClassVar[str] = "gan"
    latent_dim: int = 100
    noise: Noise = "normal"  # the released code's default; "uniform" is U(-sqrt 3, sqrt 3)
    g_hidden: int = 1200
    d_units: int = 240  # maxout units per D layer
    d_pieces: int = 5  # linear pieces per maxout unit
    d_input_dropout: float = 0.2  # drop probability on D's input pixels (keep 0.8)
    d_hidden_dropout: float = 0.5

    def __post_init__(self) -> None:
        for key in ("d_input_dropout", "d_hidden_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"model.{key} is a drop probability in [0, 1), got {getattr(self, key)}")


class MLPGenerator(Generator):
    """z: [N, latent_dim] -> images [N, C, H, W] in [-1, 1]."""

    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, hidden: int, noise: Noise) -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.noise = tuple(image_shape), latent_dim, noise
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, prod(image_shape)),
        )
        init_uniform(self, 0.05)

    def forward(self, z: Tensor) -> Tensor:
        # The paper's sigmoid models pixel intensities in [0, 1]; genlab's models work in
        # [-1, 1], so 2*sigmoid - 1 (= tanh(a/2)) is the same output unit on the same scale as
        # the real images D sees, and its bias init from the data marginals still holds.
        return (2 * torch.sigmoid(self.net(z)) - 1).view(z.shape[0], *self.image_shape)


class MaxoutDiscriminator(nn.Module):
    """x: [N, C, H, W] in [-1, 1] -> logits [N]."""

    def __init__(
        self, image_shape: tuple[int, ...], units: int, pieces: int, p_input: float, p_hidden: float
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(p_input), Maxout(prod(image_shape), units, pieces),
            nn.Dropout(p_hidden), Maxout(units, units, pieces),
            nn.Dropout(p_hidden), nn.Linear(units, 1),
        )
        init_uniform(self, 0.005)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def _marginal_logits(data: TensorDataset) -> Tensor:
    """logit of each pixel's mean intensity in [0, 1] (pylearn2's init_sigmoid_bias_from_marginals)."""
    mean = (data.x.sum(dim=0, dtype=torch.float64) / (255.0 * len(data))).flatten().float()
    return torch.logit(mean.clamp(1e-3, 1 - 1e-3))


@register_model("gan_mlp", GANMLPConfig)
def build_gan_mlp(cfg: GANMLPConfig, data: TensorDataset) -> dict[str, nn.Module]:
    if not data.is_image:
        raise ConfigError(f"gan_mlp needs an image dataset, got {data.name!r} with examples of shape {data.shape}")
    generator = MLPGenerator(data.shape, cfg.latent_dim, cfg.g_hidden, cfg.noise)
    if len(data):  # an empty spec dataset (rebuilding a saved run) loads trained weights instead
        with torch.no_grad():
            generator.net[-1].bias.copy_(_marginal_logits(data))
    discriminator = MaxoutDiscriminator(data.shape, cfg.d_units, cfg.d_pieces, cfg.d_input_dropout, cfg.d_hidden_dropout)
    return {"G": generator, "D": discriminator}
