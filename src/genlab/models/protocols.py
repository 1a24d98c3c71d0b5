"""Capabilities a model may have, as protocols that evaluation, the CLI and the latent
tools are written against (never ``isinstance(model, VAE)``).

After torch-fidelity's ``GenerativeModelBase`` (``z_size``, ``z_type``, ``num_classes``):

- :class:`LatentSampler`: maps latents to samples (VAE decoders, GAN generators);
- :class:`Encoder`: maps samples back to a posterior over latents (VAEs; a diffusion model's exact inversion);
- :class:`DecoderLikelihood`: has p(x | z) and p(z), so an ELBO (VAEs);
- :class:`ExactLikelihood`: has log p(x) itself (autoregressive models, normalizing flows);
- :class:`LikelihoodBound`: has a lower bound on log p(x) without sampling (a VQ-VAE with its prior);
- :class:`IterativeSampler`: samples in a number of steps that can change after training (diffusion);
- :class:`Conditional`: a sampler conditioned on a class label;
- :class:`Translator`: maps a source image to a target image (pix2pix's G);
- :class:`LayoutSynthesiser`: draws an image of a label map in a style image's style (SPADE's G);
- :class:`TrajectoryPredictor`: draws futures of observed paths (Social GAN's G);
- :class:`DataInitialised`: a module that sets some weights from the training data
  (the 2014 GAN's output bias) or from another run (a text_gan's pre-trained text encoder),
  called once before a new run trains;
- :class:`FittedToData`: parts refitted to the training data at every export (a VAE's ex-post prior);
- :class:`SpectralNormOption`: a discriminator whose config can put spectral normalisation on it.

``labels`` are int64 ``[N]`` class indices; images are ``[N, C, H, W]`` in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError

if TYPE_CHECKING:
    from genlab.data.base import TensorDataset


@runtime_checkable
class LatentSampler(Protocol):
    latent_dim: int

    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        """``[n, latent_dim]`` draws from the prior on the model's device."""
        ...

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Latents ``[N, latent_dim]`` -> samples."""
        ...

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """``n`` samples; a conditional model draws uniform labels from ``generator`` when none are given."""
        ...


@runtime_checkable
class Encoder(Protocol):
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Samples -> (mean, log-variance) of q(z | x), each ``[N, latent_dim]``."""
        ...


@runtime_checkable
class DecoderLikelihood(Protocol):
    """A latent-variable model with a decoder density p(x | z) and a prior p(z) (VAEs): what the ELBO and the
    importance-weighted bound need. An exact inversion (a diffusion model's) is an Encoder without one."""

    likelihood: str  # the decoder's family, e.g. "bernoulli"

    def decode_params(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Latents -> the decoder's parameters (logits or means), shaped like the images."""
        ...

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) [N] of latents [N, latent_dim]."""
        ...


@runtime_checkable
class ExactLikelihood(Protocol):
    """A model whose log-likelihood of an image is computed exactly (PixelCNN's product of conditionals)."""

    def log_prob(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x) [N] in nats of images [N, C, H, W] in [-1, 1] (of their discrete values)."""
        ...


@runtime_checkable
class LikelihoodBound(Protocol):
    """A latent-variable model whose posterior is a point (a VQ-VAE's code grid), so its ELBO needs no sampling:
    log p(x) >= log p(x | z(x)) + log p(z(x))."""

    def log_prob_bound(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The bound [N] in nats of images [N, C, H, W] in [-1, 1] (of their discrete values)."""
        ...


@runtime_checkable
class IterativeSampler(Protocol):
    """A sampler that integrates from its latent (the initial noise) to a sample in ``steps`` steps
    (diffusion, flow matching): how it samples can change after training."""

    steps: int
    sampler: str
    guidance: float  # classifier-free guidance scale; 1 is the plain conditional model

    @property
    def evaluations(self) -> int:
        """Network evaluations per sample at the current settings."""
        ...

    def set_sampling(self, steps: int | None = None, sampler: str | None = None, guidance: float | None = None) -> None:
        """Change the sampling settings (``None`` keeps one); ConfigError for an invalid one."""
        ...

    def sampling(
        self, steps: int | None = None, sampler: str | None = None, guidance: float | None = None
    ) -> AbstractContextManager[None]:
        """The settings for a ``with`` block only; the previous ones are restored after it."""
        ...

    def trajectory(self, z: Tensor, labels: Tensor | None = None, states: int = 8) -> list[Tensor]:
        """``states`` images [N, C, H, W] along the path from the latents z to their samples."""
        ...


@runtime_checkable
class Conditional(Protocol):
    num_classes: int


# The role of a translator's reverse, where its run has one (CycleGAN's G_BA; the export translates A to B).
REVERSE_ROLE = "G_BA"


@runtime_checkable
class Translator(Protocol):
    source_shape: tuple[int, int, int]  # [C, H, W] of the images it takes
    target_shape: tuple[int, int, int]  # [C, H, W] of the images it returns

    def translate(self, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Sources ``[N, *source_shape]`` in [-1, 1] -> translations ``[N, *target_shape]`` in [-1, 1],
        without gradients. A stochastic model draws its noise from ``generator`` when given."""
        ...


@runtime_checkable
class LayoutSynthesiser(Protocol):
    """Draws an image of a label map in the style of a style image (SPADE's G); also a ``Translator`` from the
    label map drawn in the label palette, with a style drawn from the noise."""

    classes: int

    def synthesise(
        self, labels: Tensor, style: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Label maps [N, H, W] (int64) and style images [N, C, H, W] in [-1, 1] (None: a style drawn from
        ``generator``) -> images [N, C, H, W] in [-1, 1]."""
        ...

    def labels_of(self, source: Tensor) -> Tensor:
        """Label maps drawn in the label palette, [N, 3, H, W] in [-1, 1] -> class indices [N, H, W]."""
        ...


@runtime_checkable
class TrajectoryPredictor(Protocol):
    """Predicts where people walk next: observed paths [N, agents, observed_steps, 2] in metres -> futures
    [samples, N, agents, predicted_steps, 2]; a generative one (``noise_dim`` > 0) draws a different future
    per sample from ``generator``."""

    observed_steps: int
    predicted_steps: int
    noise_dim: int

    def predict(self, observed: Tensor, samples: int = 1, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class DataInitialised(Protocol):
    def init_from_data(self, data: TensorDataset) -> None: ...


@runtime_checkable
class FittedToData(Protocol):
    """Has parts fitted to the training data beside gradient training (a VAE's ex-post prior): the
    loop refits them before every snapshot and export, and training never reads them."""

    def fit_to_data(self, data: TensorDataset) -> None: ...


@runtime_checkable
class SpectralNormOption(Protocol):
    """A D that its model's config can spectrally normalise: ``spectral_norm_setting`` is the override that does
    it (``model.spectral_norm=true``), so advice to a run can name it, and name nothing for a D without one."""

    spectral_norm_setting: str


@runtime_checkable
class TextConditional(Protocol):
    """A sampler conditioned on a text: ``decode(z, tokens)`` with word indices [N, L] (``tokens(texts)`` makes
    them); ``condition_key`` names the batch field of the captions (a text GAN's ``G(z, tokens, with_kl=True)``
    also returns the conditioning's KL to its prior, StackGAN's conditioning augmentation)."""

    condition_key: str

    def tokens(self, texts: list[str]) -> Tensor: ...

    def embed_text(self, tokens: Tensor) -> Tensor:
        """Word indices [N, L] -> the sentence embeddings [N, D] that the images are conditioned on: what of a
        caption reaches the generator (``metrics.captions.attribute_shares`` measures it per attribute)."""
        ...


@runtime_checkable
class StyleBased(Protocol):
    """A style-based generator (StyleGAN): z -> w by ``mapping``, then ``synthesis`` of one w per layer;
    ``G(z, with_path_lengths=True)`` returns the images and their path lengths [N] (StyleGAN2's regulariser)."""

    num_ws: int
    w_dim: int
    latent_dim: int  # of z
    image_shape: tuple[int, ...]

    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        """``[n, latent_dim]`` draws of z from the prior."""
        ...

    def mapping(self, z: Tensor) -> Tensor:
        """z [N, latent_dim] -> w [N, w_dim]."""
        ...

    def synthesis(self, ws: Tensor) -> Tensor:
        """ws [N, num_ws, w_dim] -> images."""
        ...

    def resolution_parts(self, ws: Tensor) -> dict[int, Tensor]:
        """ws -> {resolution: what it adds to the image, at the output size}; the parts sum to the image."""
        ...

    def broadcast(self, w: Tensor) -> Tensor:
        """w [N, w_dim] -> the same w for every layer, [N, num_ws, w_dim]."""
        ...

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """Truncation in W towards the mean w."""
        ...

    def mix(self, z_a: Tensor, z_b: Tensor, crossover: int, psi: float = 1.0) -> Tensor:
        """Images with ``z_a``'s styles before layer ``crossover`` and ``z_b``'s after it."""
        ...


@runtime_checkable
class Staged(Protocol):
    """A network whose training moves through stages as a function of the images seen, which the loop sets
    before every iteration: ProGAN grows its resolution, a VQ-VAE trains its autoencoder and then its prior.
    The count is a buffer, so a checkpoint restores the stage; some parameters take no gradient in some
    stages (DDP is told to look for them)."""

    def set_progress(self, images_seen: int) -> None: ...


def as_module(model: object) -> nn.Module:
    """``model``, which has a capability above (LatentSampler, Encoder, ...), as the nn.Module every genlab model is."""
    assert isinstance(model, nn.Module), f"{type(model).__name__} is not an nn.Module"
    return model


def is_conditional(model: object) -> bool:
    """Whether ``model`` is a sampler that takes class labels."""
    return isinstance(model, LatentSampler) and isinstance(model, Conditional) and model.num_classes > 0


def check_labels(model: nn.Module, n: int, labels: Tensor | None, generator: torch.Generator | None) -> Tensor | None:
    """Labels for ``n`` samples of ``model``: validated, drawn uniformly if missing, on its device.

    Unconditional models take none: passing labels to one is a mistake worth a clear error.
    """
    if not is_conditional(model):
        if labels is not None:
            raise ConfigError(f"{type(model).__name__} is not class-conditional; sample it without a class")
        return None
    assert isinstance(model, Conditional)  # is_conditional checked it
    k = model.num_classes
    if labels is None:
        labels = torch.randint(k, (n,), generator=generator)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if labels.numel() != n:
        raise ConfigError(f"got {labels.numel()} labels for {n} samples")
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ConfigError(f"class labels must be in 0..{k - 1}, got {labels.min().item()}..{labels.max().item()}")
    return labels.to(next(model.parameters()).device)


MIN_TRUNCATION = 0.04  # BigGAN's smallest; P(|z| <= 0.04) is 3%, so redrawing stays quick (rejection sampling)


def normal_latents(
    n: int, dim: int, generator: torch.Generator | None, device: torch.device, truncation: float | None = None
) -> Tensor:
    """Standard normal ``[n, dim]``; with ``truncation`` t, values beyond +-t are redrawn (BigGAN's trick).

    With a (CPU) ``generator`` they are drawn on the CPU and moved, so a seed gives the same
    latents on every device; without one, from the global RNG on ``device``.
    """
    if truncation is not None and not truncation >= MIN_TRUNCATION:  # NaN too
        raise ConfigError(
            f"truncation must be at least {MIN_TRUNCATION} (smaller is closer to the mode; below that the "
            f"redraws take too long), got {truncation}"
        )
    draw_on = torch.device("cpu") if generator is not None else device
    z = torch.randn(n, dim, generator=generator, device=draw_on)
    if truncation is not None:
        outside = z.abs() > truncation
        while outside.any():  # each pass redraws a fraction of the rest: a few passes even for t = 0.5
            z[outside] = torch.randn(int(outside.sum()), generator=generator, device=draw_on)
            outside = z.abs() > truncation
    return z.to(device)


class NoiseSampler(nn.Module):
    """The ``LatentSampler`` half shared by every model whose latent is standard normal noise of ``latent_dim``
    (GAN generators, diffusion, flows, PixelCNN's sampling noise): ``latents`` draws it and ``sample`` decodes
    it. Subclasses implement ``decode``; ``condition`` validates or draws what samples are conditioned on
    (class labels here, captions for a text model)."""

    latent_dim: int

    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        return normal_latents(n, self.latent_dim, generator, next(self.parameters()).device, truncation)

    def condition(self, n: int, labels: Tensor | None, generator: torch.Generator | None) -> Tensor | None:
        return check_labels(self, n, labels, generator)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        truncation: float | None = None,
    ) -> Tensor:
        """``n`` samples in the module's current train/eval mode; the latents are drawn before the labels."""
        z = self.latents(n, generator, truncation)
        return self.decode(z, self.condition(n, labels, generator))


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode and without gradients for the block; its mode is restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)
