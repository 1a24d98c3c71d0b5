"""Interpolation between latents: lerp, and slerp for Gaussian priors (White 2016, "Sampling
Generative Networks"), written out as a strip PNG or an animated GIF.

Why slerp: in high dimensions nearly all the mass of N(0, I) lies near the sphere of radius
sqrt(D); the straight line between two draws passes well inside it (its midpoint has norm
about sqrt(D / 2)), where the decoder saw few latents. Slerp follows the great circle
instead and keeps the norm when the endpoints share it.
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.latent.sample import decode, prior_is_gaussian
from genlab.models.protocols import LatentSampler

Method = Literal["lerp", "slerp"]
METHODS: tuple[str, ...] = ("lerp", "slerp")
_PARALLEL = 1e-4  # |sin(angle)| below which slerp falls back to lerp (the endpoints are (anti)parallel)


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Straight line: a, b ``[..., D]``, t ``[S]`` -> ``[S, ..., D]`` with row s = (1 - t_s) a + t_s b."""
    t = t.to(a).reshape(-1, *([1] * a.dim()))
    return (1 - t) * a + t * b


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation along the great circle of a and b: a, b ``[..., D]``, t ``[S]`` -> ``[S, ..., D]``.

    Row s = sin((1 - t_s) w) / sin w * a + sin(t_s w) / sin w * b, with w the angle between a and b.
    Exact at t = 0 and 1; norm-preserving when |a| = |b|. (Anti)parallel endpoints fall back to lerp.
    """
    t = t.to(a).reshape(-1, *([1] * a.dim()))
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)).clamp_min(1e-12)
    omega = cos.clamp(-1.0, 1.0).acos()
    sin = omega.sin()
    parallel = sin.abs() < _PARALLEL
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, 1 - t, ((1 - t) * omega).sin() / safe)
    wb = torch.where(parallel, t, (t * omega).sin() / safe)
    return wa * a + wb * b


def interpolation_path(keys: Tensor, steps: int, method: Method = "slerp") -> Tensor:
    """Through key latents ``[K, D]`` (K >= 2), ``steps`` points per segment ends included:
    ``[(K - 1) * (steps - 1) + 1, D]``."""
    if keys.dim() != 2 or keys.shape[0] < 2:
        raise ConfigError(f"interpolation needs at least two latents [K >= 2, D], got {tuple(keys.shape)}")
    if steps < 2:
        raise ConfigError(f"--steps counts the images per segment, ends included: at least 2, got {steps}")
    if method not in METHODS:
        raise ConfigError(f"unknown interpolation {method!r}; choose from {', '.join(METHODS)}")
    step = lerp if method == "lerp" else slerp
    t = torch.linspace(0.0, 1.0, steps)
    segments = [step(a, b, t)[:-1] for a, b in itertools.pairwise(keys)]
    return torch.cat([*segments, keys[-1:]])


def default_method(model: LatentSampler) -> Method:
    """slerp for a Gaussian prior, lerp otherwise (a uniform cube's straight lines stay inside it)."""
    return "slerp" if prior_is_gaussian(model) else "lerp"


def interpolate(
    model: LatentSampler, keys: Tensor, steps: int = 8, method: Method | None = None, label: int | None = None
) -> Tensor:
    """Images along :func:`interpolation_path` through ``keys`` ``[K, D]``:
    ``[(K - 1) * (steps - 1) + 1, C, H, W]`` in [-1, 1]."""
    return decode(model, interpolation_path(keys, steps, method or default_method(model)), label)
