"""GAN inversion by optimisation: find z with G(z) close to a given image (Creswell & Bharath 2018,
"Inverting the Generator of a Generative Adversarial Network"; Zhu et al. 2016 use the same loop).

Adam on z against the per-image pixel mean squared error, from ``restarts`` prior draws per
image; the best restart is kept and its error reported. Differences from the papers: pixel
MSE only (no perceptual or prior term), no encoder to start from, a cosine-decayed step size.
Images are independent: each one's latents see only its own error, so a batch inverts as
its images would one by one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.models.protocols import LatentSampler, as_module

INVERT_BATCH = 64  # images (times restarts) optimised together


class Inversion(NamedTuple):
    z: Tensor  # [N, D] the best latent found per image
    images: Tensor  # [N, C, H, W] in [-1, 1], the decodes of z
    mse: Tensor  # [N] their mean squared error per pixel, in [-1, 1] units (the loss)
    restart_mse: Tensor  # [N, R] the final error of every restart


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode with its parameters excluded from autograd; both restored after."""
    was_training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval().requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        module.train(was_training)


def invert(
    model: LatentSampler,
    x: Tensor,
    labels: Tensor | None = None,
    steps: int = 300,
    restarts: int = 4,
    lr: float = 0.1,
    generator: torch.Generator | None = None,
) -> Inversion:
    """Latents of images ``x`` ``[N, C, H, W]`` in [-1, 1] under ``model.decode`` (labels ``[N]`` for a
    conditional model), by ``steps`` Adam steps from ``restarts`` prior draws each."""
    if steps < 1 or restarts < 1 or lr <= 0:
        raise ConfigError(f"inversion needs steps >= 1, restarts >= 1 and a positive lr; got {steps}, {restarts}, {lr}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    parts = [
        _invert_chunk(
            model,
            x[i : i + INVERT_BATCH],
            None if labels is None else labels[i : i + INVERT_BATCH],
            steps,
            restarts,
            lr,
            generator,
        )
        for i in range(0, x.shape[0], INVERT_BATCH)
    ]
    return Inversion(*(torch.cat(field) for field in zip(*parts, strict=True)))


def _invert_chunk(
    model: LatentSampler,
    x: Tensor,
    labels: Tensor | None,
    steps: int,
    restarts: int,
    lr: float,
    generator: torch.Generator,
) -> Inversion:
    n = x.shape[0]
    device = next(as_module(model).parameters()).device
    x = x.to(device).repeat(restarts, 1, 1, 1)  # restart r of image i is row r * n + i
    labels = None if labels is None else labels.to(device).repeat(restarts)
    z = model.latents(n * restarts, generator=generator).detach().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    with frozen(as_module(model)), torch.enable_grad():
        for _ in range(steps):
            error = (model.decode(z, labels) - x).square().flatten(1).mean(1)  # [n * R]
            optimizer.zero_grad(set_to_none=True)
            error.sum().backward()  # the sum keeps each latent's gradient its own image's
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            images = model.decode(z, labels)
            error = (images - x).square().flatten(1).mean(1).view(restarts, n)
    mse, best = error.min(0)  # [n] each
    pick = best * n + torch.arange(n, device=device)
    return Inversion(z.detach()[pick], images[pick], mse, error.t())
