"""Variational autoencoders (Kingma & Welling 2014; beta-VAE, Higgins et al. 2017).

``vae_mlp`` is the paper's MNIST model: 784 -> 400 -> (mu, log sigma^2) of 20 dims and
20 -> 400 -> 784, ReLU hidden units (the paper used tanh; ReLU follows the widely used
PyTorch example that our benchmark compares against). ``conv_vae`` is a convolutional
encoder/decoder for 28, 32 and 64 pixel images. Both decode either Bernoulli logits or
Gaussian means with one learned log sigma (Rybkin et al. 2021's sigma-VAE). The losses
live in ``genlab.losses.vae``; ``forward`` only runs the networks.

``conditional=true`` makes either a CVAE (Sohn et al. 2015): q(z | x, y) and p(x | z, y)
with the one-hot label y. Difference: y joins the encoder at its last (linear) layer, next
to the image features, instead of at the input pixels, and the decoder at its first layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import NON_NEGATIVE, ModelConfig, Range, at_least
from genlab.data.base import Classes, Image, Spec, TensorDataset, image_field, num_classes_for, sample_field
from genlab.errors import ConfigError
from genlab.gaussians import log_standard_normal
from genlab.models.priors import GaussianMixturePrior
from genlab.models.protocols import NoiseSampler, eval_mode
from genlab.registry import register_model

# ample for a mixture of ~1,500 parameters (10 components in 16-D); bounds EM time on big data
PRIOR_FIT_IMAGES = 10_000


class VAEOutput(NamedTuple):
    mu: Tensor  # [N, D]
    logvar: Tensor  # [N, D]
    z: Tensor  # [N, D], a reparameterised sample mu + sigma * eps
    params: Tensor  # decoder output for z: logits or means, shaped like x


class VAE(NoiseSampler):
    """Shared behaviour. Subclasses provide ``encoder`` (x -> features), ``encoder_head``
    (features [+ one-hot y] -> mu, logvar), ``decoder_in`` (z [+ one-hot y] -> hidden) and
    ``decoder`` (hidden -> image-shaped logits or means).

    Provides the LatentSampler and Encoder capabilities, and Conditional when
    ``num_classes > 0``. With ``prior_components > 0`` it samples from a Gaussian mixture
    fitted to the training set's codes (:mod:`genlab.models.priors`) once :meth:`fit_to_data`
    has run; training is against N(0, I) either way.
    """

    encoder: nn.Module
    encoder_head: nn.Module
    decoder_in: nn.Module
    decoder: nn.Module

    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        likelihood: str,
        num_classes: int = 0,
        prior_components: int = 0,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.num_classes = num_classes
        # One learned noise scale for the Gaussian decoder; absent for Bernoulli.
        self.log_sigma = nn.Parameter(torch.zeros(1)) if likelihood == "gaussian" else None
        self.prior = GaussianMixturePrior(prior_components, latent_dim) if prior_components else None

    def _with_label(self, h: Tensor, labels: Tensor | None, what: str) -> Tensor:
        if not self.num_classes:
            if labels is not None:
                raise ConfigError("this VAE is not class-conditional; use it without labels")
            return h
        if labels is None:
            raise ConfigError(f"this CVAE needs the class labels to {what}")
        return torch.cat([h, F.one_hot(labels, self.num_classes).to(h.dtype)], dim=1)

    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: [N, C, H, W] in [-1, 1] -> (mu, logvar), each [N, D]."""
        mu, logvar = self.encoder_head(self._with_label(self.encoder(x), labels, "encode")).chunk(2, dim=1)
        return mu, logvar

    def decode_params(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z: [N, D] -> decoder output shaped [N, C, H, W] (logits or means)."""
        return self.decoder(self.decoder_in(self._with_label(z, labels, "decode"))).view(z.shape[0], *self.image_shape)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z: [N, D] -> the mean image of p(x|z), [N, C, H, W] in [-1, 1]."""
        params = self.decode_params(z, labels)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(params) * 2.0 - 1.0
        return params.clamp(-1.0, 1.0)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encode(x, labels)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation trick
        return VAEOutput(mu, logvar, z, self.decode_params(z, labels))

    @property
    def fitted_prior(self) -> GaussianMixturePrior | None:
        """The ex-post prior once fitted, else None (the N(0, I) prior)."""
        return self.prior if self.prior is not None and bool(self.prior.fitted) else None

    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        """n draws from the prior on the model's device (drawn on the CPU with ``generator``): the fitted
        mixture when there is one, else N(0, I)."""
        if self.fitted_prior is not None:
            return self.fitted_prior.sample(n, generator, truncation)
        return super().latents(n, generator, truncation)

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) under the prior :meth:`latents` samples. z: [..., D] -> [...]."""
        return self.fitted_prior.log_prob(z) if self.fitted_prior is not None else log_standard_normal(z)

    def fit_to_data(self, data: TensorDataset, batch_size: int = 1000) -> None:
        """Fit the ex-post prior to the aggregate posterior, one draw z ~ q(z|x) per image of (at most
        ``PRIOR_FIT_IMAGES`` of) ``data``; nothing without a prior. The training loop calls this
        before every snapshot and export.

        Draws, not the posterior means: dimensions the decoder ignores have means near 0 and
        variances near 1, and a mixture fitted to the means would squeeze them to a point, a poor
        density for the likelihood estimates (samples look the same either way: FID-MNIST 98 vs
        92). The draws use a generator of their own, so training's random stream is untouched.
        """
        if self.prior is None:
            return
        image_key, device = sample_field(data.spec), next(self.parameters()).device
        generator = torch.Generator().manual_seed(0)
        chosen = torch.randperm(len(data), generator=generator)[:PRIOR_FIT_IMAGES]
        codes = []
        with eval_mode(self):
            for index in chosen.split(batch_size):
                batch = data.batch(index, device)
                mu, logvar = self.encode(batch[image_key], batch["label"] if self.num_classes else None)
                codes.append(mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator).to(mu))
        self.prior.fit(torch.cat(codes).float())

    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Decode the posterior mean: a deterministic reconstruction in [-1, 1]."""
        return self.decode(self.encode(x, labels)[0], labels)


# ----------------------------------------------------------------------------- MLP VAE


@dataclass
class VAEMLPConfig(ModelConfig):
    name: str = "vae_mlp"
    family: ClassVar[str] = "vae"
    hidden: int = 400
    latent_dim: int = 20
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    conditional: bool = False  # a CVAE on the data's class labels
    prior_components: int = 0  # > 0: sample from a mixture of this many Gaussians fitted to the codes (ex-post prior)
    bounds: ClassVar[dict[str, Range]] = {
        "hidden": at_least(1),
        "latent_dim": at_least(1),
        "prior_components": NON_NEGATIVE,
    }
    example_spec: ClassVar[Spec] = {"image": Image(1, 28, 28), "label": Classes(tuple("0123456789"))}
    example_variants: ClassVar[tuple[dict, ...]] = ({}, {"conditional": True})


class ToUnitInterval(nn.Module):
    """[-1, 1] -> [0, 1], the input scale of Kingma & Welling's MNIST encoder."""

    def forward(self, x: Tensor) -> Tensor:
        return (x + 1.0) * 0.5


class VAEMLP(VAE):
    def __init__(
        self,
        image_shape: tuple[int, ...],
        hidden: int,
        latent_dim: int,
        likelihood: str,
        num_classes: int = 0,
        prior_components: int = 0,
    ) -> None:
        super().__init__(image_shape, latent_dim, likelihood, num_classes, prior_components)
        pixels = int(torch.tensor(image_shape).prod())
        # The paper's encoder reads intensities in [0, 1]: a black background then adds nothing
        # to the first layer. Feeding genlab's [-1, 1] directly costs about 2 nats on MNIST.
        self.encoder = nn.Sequential(ToUnitInterval(), nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU())
        self.encoder_head = nn.Linear(hidden + num_classes, 2 * latent_dim)
        self.decoder_in = nn.Linear(latent_dim + num_classes, hidden)
        self.decoder = nn.Sequential(nn.ReLU(), nn.Linear(hidden, pixels))


@register_model("vae_mlp", VAEMLPConfig)
def build_vae_mlp(cfg: VAEMLPConfig, spec: Spec) -> dict:
    shape, k = image_field(spec, "vae_mlp").shape, num_classes_for(spec, "vae_mlp", cfg.conditional)
    return {"vae": lambda: VAEMLP(shape, cfg.hidden, cfg.latent_dim, cfg.likelihood, k, cfg.prior_components)}


# ---------------------------------------------------------------------------- conv VAE


@dataclass
class ConvVAEConfig(ModelConfig):
    name: str = "conv_vae"
    family: ClassVar[str] = "vae"
    latent_dim: int = 10
    channels: int = 32  # width of the first conv layer; doubles per downsampling
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    conditional: bool = False  # a CVAE on the data's class labels
    prior_components: int = 0  # > 0: sample from a mixture of this many Gaussians fitted to the codes (ex-post prior)
    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "channels": at_least(1),
        "prior_components": NON_NEGATIVE,
    }
    example_variants: ClassVar[tuple[dict, ...]] = ({}, {"conditional": True}, {"prior_components": 3})


# Stride-2 stages per supported image size: each halves the side down to 7 or 4 pixels.
_CONV_STAGES = {28: 2, 32: 3, 64: 4}


class ConvVAE(VAE):
    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        channels: int,
        likelihood: str,
        num_classes: int = 0,
        prior_components: int = 0,
    ) -> None:
        super().__init__(image_shape, latent_dim, likelihood, num_classes, prior_components)
        in_channels, size = image_shape[0], image_shape[-1]
        stages = _CONV_STAGES[size]
        widths = [channels * 2**i for i in range(stages)]
        side = size // 2**stages
        down: list[nn.Module] = []
        for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True):
            down += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.encoder_head = nn.Linear(widths[-1] * side * side + num_classes, 2 * latent_dim)
        self.decoder_in = nn.Linear(latent_dim + num_classes, widths[-1] * side * side)
        up: list[nn.Module] = [nn.ReLU(), nn.Unflatten(1, (widths[-1], side, side))]
        for c_in, c_out in zip(widths[::-1], [*widths[::-1][1:], in_channels], strict=True):
            up += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])  # no activation on the output: logits or means


@register_model("conv_vae", ConvVAEConfig)
def build_conv_vae(cfg: ConvVAEConfig, spec: Spec) -> dict:
    shape = image_field(spec, "conv_vae", sorted(_CONV_STAGES)).shape
    k = num_classes_for(spec, "conv_vae", cfg.conditional)
    return {"vae": lambda: ConvVAE(shape, cfg.latent_dim, cfg.channels, cfg.likelihood, k, cfg.prior_components)}
