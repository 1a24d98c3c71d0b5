"""Sweeps of class-conditional samplers: fix z and sweep the class (style held, content changed),
or fix the class and sweep z (content held, style changed)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.latent.sample import class_labels, decode
from genlab.models.protocols import Conditional, LatentSampler, is_conditional


def check_classes(model: LatentSampler, classes: Sequence[int] | None) -> list[int]:
    """``classes`` (all by default), each checked against a conditional model's classes."""
    if not is_conditional(model):
        raise ConfigError(f"this {type(model).__name__} is not class-conditional: it has no classes to sweep")
    assert isinstance(model, Conditional)  # is_conditional checked it
    classes = list(range(model.num_classes)) if classes is None else list(classes)
    for k in classes:
        class_labels(model, k, 1)  # raises for a class out of range
    return classes


def class_sweep(model: LatentSampler, z: Tensor, classes: Sequence[int] | None = None) -> Tensor:
    """One latent ``[D]`` decoded as each class: ``[len(classes), C, H, W]`` in [-1, 1]."""
    return torch.cat([decode(model, z[None], k) for k in check_classes(model, classes)])


def latent_sweep(model: LatentSampler, z: Tensor, label: int) -> Tensor:
    """Latents ``[S, D]`` decoded as class ``label``: ``[S, C, H, W]`` in [-1, 1]."""
    return decode(model, z, check_classes(model, [label])[0])


def sweep_grid(model: LatentSampler, z: Tensor, classes: Sequence[int] | None = None) -> Grid:
    """Row i: latent ``z[i]`` (of ``[R, D]``) as each class; column j: class ``classes[j]`` for every latent."""
    classes = check_classes(model, classes)
    return Grid(torch.cat([class_sweep(model, row, classes) for row in z]), len(classes))
