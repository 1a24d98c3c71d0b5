"""Latents and decodes of any :class:`~genlab.models.protocols.LatentSampler` (VAE decoder, GAN generator).

Draws go through the model's own ``latents`` (its prior and truncation), always from an
explicit ``torch.Generator`` so that a seed names one latent on every device.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.models.protocols import (
    Conditional,
    IterativeSampler,
    LatentSampler,
    as_module,
    eval_mode,
    is_conditional,
)

DECODE_BATCH = 256  # latents decoded per model call


def require_sampler(model: object) -> LatentSampler:
    """``model`` itself if it maps latents to samples, else a ConfigError saying so."""
    if not isinstance(model, LatentSampler):
        raise ConfigError(
            f"a {type(model).__name__} has no latent space (it is not a VAE or GAN generator); "
            "latent tools need a model that samples from latents"
        )
    return model


def sample_latents(model: LatentSampler, n: int, generator: torch.Generator, truncation: float | None = None) -> Tensor:
    """``[n, latent_dim]`` prior draws from ``generator``; ``truncation`` t redraws values beyond +-t."""
    return model.latents(n, generator=generator, truncation=truncation)


def seed_latents(model: LatentSampler, seeds: Sequence[int], truncation: float | None = None) -> Tensor:
    """One latent per seed, ``[len(seeds), latent_dim]``: row i is the first draw of ``seeds[i]``."""
    if not seeds:
        raise ConfigError("give at least one seed")
    return torch.cat([sample_latents(model, 1, torch.Generator().manual_seed(s), truncation) for s in seeds])


def class_labels(model: object, label: int | None, n: int) -> Tensor | None:
    """``[n]`` copies of class ``label`` for a conditional model (checked against its classes); None otherwise."""
    name = type(model).__name__
    if not is_conditional(model):
        if label is not None:
            raise ConfigError(f"this {name} is not class-conditional; use it without a class")
        return None
    assert isinstance(model, Conditional)  # is_conditional checked it
    k = model.num_classes
    if label is None:
        raise ConfigError(f"this {name} is class-conditional with {k} classes: give a class in 0..{k - 1} (--class K)")
    if not 0 <= label < k:
        raise ConfigError(f"class {label} is out of range: this {name} has {k} classes, 0..{k - 1}")
    return torch.full((n,), label, dtype=torch.int64, device=next(as_module(model).parameters()).device)


def decode(model: LatentSampler, z: Tensor, label: int | None = None) -> Tensor:
    """Latents ``[N, latent_dim]`` -> images ``[N, C, H, W]`` in [-1, 1], in eval mode, without gradients.

    A conditional model decodes every latent as class ``label``.
    """
    if z.dim() != 2 or z.shape[1] != model.latent_dim:
        raise ConfigError(f"latents must be [N, {model.latent_dim}] for this model, got {tuple(z.shape)}")
    labels = class_labels(model, label, z.shape[0])
    device = next(as_module(model).parameters()).device
    with eval_mode(as_module(model)):
        chunks = [
            model.decode(z[i : i + DECODE_BATCH].to(device), None if labels is None else labels[i : i + DECODE_BATCH])
            for i in range(0, z.shape[0], DECODE_BATCH)
        ]
    return torch.cat(chunks)


def require_iterative(model: object, what: str) -> IterativeSampler:
    """``model`` itself if it samples in steps (diffusion, flow matching), else a ConfigError saying
    that it samples in one pass, so ``what`` (e.g. "--steps does not apply")."""
    if not isinstance(model, IterativeSampler):
        raise ConfigError(
            f"a {type(model).__name__} samples in one pass, so {what}; that needs a diffusion or flow-matching model"
        )
    return model


@contextmanager
def sampling(
    model: object, steps: int | None = None, guidance: float | None = None, sampler: str | None = None
) -> Iterator[None]:
    """The block samples ``model`` with ``steps``, ``guidance`` and ``sampler`` (its own settings after
    it); all None is a no-op for any model. Only a diffusion or flow-matching model takes them."""
    given = [k for k, v in (("steps", steps), ("guidance", guidance), ("sampler", sampler)) if v is not None]
    if not given:
        yield
        return
    settings = f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply"
    with require_iterative(model, settings).sampling(steps, sampler, guidance):
        yield


def sample_shape(model: LatentSampler) -> tuple[int, ...]:
    """The shape of one sample, e.g. ``(3, 32, 32)`` for images or ``(2,)`` for toy points, from one decode."""
    z = model.latents(1, generator=torch.Generator().manual_seed(0))
    return tuple(decode(model, z, 0 if is_conditional(model) else None).shape[1:])


def prior_is_gaussian(model: LatentSampler) -> bool:
    """Whether the model's prior is a standard normal (every genlab prior but the 2014 GAN's uniform option)."""
    return getattr(model, "noise", "normal") == "normal"
