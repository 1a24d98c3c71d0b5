"""Editing real images in latent space: find their latents (encode, or invert a GAN), change
chosen dimensions or add an attribute vector, decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.latent.encode import encode_means, require_encoder
from genlab.latent.invert import invert
from genlab.latent.sample import class_labels, decode
from genlab.latent.traverse import check_dims
from genlab.models.protocols import LatentSampler


class ImageLatents(NamedTuple):
    z: Tensor  # [N, D]
    reconstruction: Tensor  # [N, C, H, W] in [-1, 1]: decode(z)
    mse: Tensor  # [N] mean squared error per pixel of the reconstruction, in [-1, 1] units


def image_latents(
    model: LatentSampler, x: Tensor, label: int | None = None, use_inversion: bool = False, **inversion
) -> ImageLatents:
    """Latents of images ``x`` ``[N, C, H, W]`` in [-1, 1]: the posterior means of a model with an
    encoder, or (``use_inversion``, the only way for a GAN) those :func:`~genlab.latent.invert.invert`
    finds, with keyword arguments ``inversion`` (steps, restarts, lr, generator)."""
    labels = class_labels(model, label, x.shape[0])
    if use_inversion:
        found = invert(model, x, labels, **inversion)
        return ImageLatents(found.z, found.images, found.mse)
    z = encode_means(require_encoder(model), x, labels)
    recon = decode(model, z, label)
    return ImageLatents(z, recon, (recon - x.to(recon)).square().flatten(1).mean(1))


def edit_latents(
    z: Tensor,
    set_dims: Mapping[int, float] | None = None,
    shift_dims: Mapping[int, float] | None = None,
    direction: Tensor | None = None,
    strength: float = 1.0,
) -> Tensor:
    """A copy of ``z`` ``[N, D]`` with dims set to values, dims shifted by amounts (both in prior
    standard deviations) and ``strength`` times ``direction`` ``[D]`` added (an attribute vector)."""
    z = z.clone()
    for dim, value in (set_dims or {}).items():
        z[:, check_dims([dim], z.shape[1])[0]] = value
    for dim, amount in (shift_dims or {}).items():
        z[:, check_dims([dim], z.shape[1])[0]] += amount
    if direction is not None:
        if direction.shape != (z.shape[1],):
            raise ConfigError(
                f"an attribute vector must be [{z.shape[1]}] for this model, got {tuple(direction.shape)}"
            )
        z += strength * direction.to(z)
    return z


def edit(model: LatentSampler, z: Tensor, label: int | None = None, **changes) -> Tensor:
    """Decode ``z`` ``[N, D]`` after :func:`edit_latents` with ``changes``: ``[N, C, H, W]`` in [-1, 1]."""
    with torch.no_grad():
        return decode(model, edit_latents(z, **changes), label)
