"""Variational autoencoders (Kingma & Welling 2014; beta-VAE, Higgins et al. 2017).

``vae_mlp`` is the paper's MNIST model: 784 -> 400 -> (mu, log sigma^2) of 20 dims and
20 -> 400 -> 784, ReLU hidden units (the paper used tanh; ReLU follows the widely used
PyTorch example that our benchmark compares against). ``conv_vae`` is a convolutional
encoder/decoder for 28, 32 and 64 pixel images. Both decode either Bernoulli logits or
Gaussian means with one learned log sigma (Rybkin et al. 2021's sigma-VAE). The losses
live in ``genlab.losses.vae``; ``forward`` only runs the networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from genlab.config import ModelConfig
from genlab.data.base import TensorDataset
from genlab.errors import ConfigError
from genlab.registry import register_model


class VAEOutput(NamedTuple):
    mu: Tensor  # [N, D]
    logvar: Tensor  # [N, D]
    z: Tensor  # [N, D], a reparameterised sample mu + sigma * eps
    params: Tensor  # decoder output for z: logits or means, shaped like x


class VAE(nn.Module):
    """Shared behaviour; subclasses provide ``encoder``/``decoder`` networks."""

    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, likelihood: str) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        # One learned noise scale for the Gaussian decoder; absent for Bernoulli.
        self.log_sigma = nn.Parameter(torch.zeros(1)) if likelihood == "gaussian" else None

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [N, C, H, W] in [-1, 1] -> (mu, logvar), each [N, D]."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def decode_params(self, z: Tensor) -> Tensor:
        """z: [N, D] -> decoder output shaped [N, C, H, W] (logits or means)."""
        return self.decoder(z).view(z.shape[0], *self.image_shape)

    def decode(self, z: Tensor) -> Tensor:
        """z: [N, D] -> the mean image of p(x|z), [N, C, H, W] in [-1, 1]."""
        params = self.decode_params(z)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params) * 2.0 - 1.0
        return params.clamp(-1.0, 1.0)

    def forward(self, x: Tensor) -> VAEOutput:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation trick
        return VAEOutput(mu, logvar, z, self.decode_params(z))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n images from the prior, [n, C, H, W] in [-1, 1].

        Latents are drawn on the CPU (``generator`` is a CPU generator), so a seed gives
        the same samples on every device.
        """
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.decode(z.to(next(self.parameters()).device))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the posterior mean: a deterministic reconstruction in [-1, 1]."""
        return self.decode(self.encode(x)[0])


# ----------------------------------------------------------------------------- MLP VAE


@dataclass
class VAEMLPConfig(ModelConfig):
    name: str = "vae_mlp"
    family: ClassVar[str] = "vae"
    hidden: int = 400
    latent_dim: int = 20
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"


class ToUnitInterval(nn.Module):
    """[-1, 1] -> [0, 1], the input scale of Kingma & Welling's MNIST encoder."""

    def forward(self, x: Tensor) -> Tensor:
        return (x + 1.0) * 0.5


class VAEMLP(VAE):
    def __init__(self, image_shape: tuple[int, ...], hidden: int, latent_dim: int, likelihood: str) -> None:
        super().__init__(image_shape, latent_dim, likelihood)
        pixels = int(torch.tensor(image_shape).prod())
        # The paper's encoder reads intensities in [0, 1]: a black background then adds nothing
        # to the first layer. Feeding genlab's [-1, 1] directly costs about 2 nats on MNIST.
        self.encoder = nn.Sequential(
            ToUnitInterval(), nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, pixels))


@register_model("vae_mlp", VAEMLPConfig)
def build_vae_mlp(cfg: VAEMLPConfig, data: TensorDataset) -> dict[str, nn.Module]:
    return {"vae": VAEMLP(data.shape, cfg.hidden, cfg.latent_dim, cfg.likelihood)}


# ---------------------------------------------------------------------------- conv VAE


@dataclass
class ConvVAEConfig(ModelConfig):
    name: str = "conv_vae"
    family: ClassVar[str] = "vae"
    latent_dim: int = 10
    channels: int = 32  # width of the first conv layer; doubles per downsampling
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"


# Stride-2 stages per supported image size: each halves the side down to 7 or 4 pixels.
_CONV_STAGES = {28: 2, 32: 3, 64: 4}


class ConvVAE(VAE):
    def __init__(self, image_shape: tuple[int, ...], latent_dim: int, channels: int, likelihood: str) -> None:
        super().__init__(image_shape, latent_dim, likelihood)
        in_channels, size = image_shape[0], image_shape[-1]
        stages = _CONV_STAGES[size]
        widths = [channels * 2**i for i in range(stages)]
        side = size // 2**stages
        down: list[nn.Module] = []
        for c_in, c_out in zip([in_channels] + widths[:-1], widths):
            down += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(widths[-1] * side * side, 2 * latent_dim))
        up: list[nn.Module] = [nn.Linear(latent_dim, widths[-1] * side * side), nn.ReLU(), nn.Unflatten(1, (widths[-1], side, side))]
        for c_in, c_out in zip(widths[::-1], widths[::-1][1:] + [in_channels]):
            up += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])  # no activation on the output: logits or means


@register_model("conv_vae", ConvVAEConfig)
def build_conv_vae(cfg: ConvVAEConfig, data: TensorDataset) -> dict[str, nn.Module]:
    shape = data.shape
    if len(shape) != 3 or shape[1] != shape[2] or shape[2] not in _CONV_STAGES:
        raise ConfigError(
            f"conv_vae supports square images of {sorted(_CONV_STAGES)} pixels, got {shape}; "
            "set data.image_size to one of them or use model.name=vae_mlp"
        )
    return {"vae": ConvVAE(shape, cfg.latent_dim, cfg.channels, cfg.likelihood)}
