"""Image measures for image-to-image translation, as pure functions of uint8 images.

The measures of pix2pix's argument (Isola et al. 2017: L1 and L2 alone give blurry,
desaturated outputs; a conditional GAN sharp and colourful ones), each a per-image value
averaged over the set:

- :func:`l1_error`: mean absolute difference to the targets, in [0, 1] intensity units
  (half the L1 that pix2pix trains on in [-1, 1]);
- :func:`sharpness`: mean gradient magnitude (forward differences, [0, 1] units), and
  :func:`sharpness_ratio`, the outputs' against the targets' (1 = as sharp, < 1 blurrier);
- :func:`colourfulness`: Hasler & Suesstrunk's (2003) M in 0..255 units, their scale
  (0 not colourful, about 33 moderately, 59 quite, 82 highly, 109 extremely colourful);
- :func:`diversity`: for K outputs of each input under different noise, the mean pairwise
  L1 distance between them, in pixels or in any feature space (the one-to-many question).

Images are uint8 ``[N, C, H, W]`` with C = 1 (grey) or 3 (RGB), as datasets hold them.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def _check_images(images: Tensor, name: str = "images") -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise TypeError(f"{name}: expected uint8 [N, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}")


def _unit(images: Tensor) -> Tensor:
    """uint8 -> float64 in [0, 1]."""
    return images.double() / 255.0


def l1_error(outputs: Tensor, targets: Tensor) -> float:
    """Mean |output - target| over pixels, channels and images, in [0, 1] units."""
    _check_images(outputs, "outputs")
    _check_images(targets, "targets")
    if outputs.shape != targets.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)} differ in shape")
    return float((_unit(outputs) - _unit(targets)).abs().mean())


def gradient_magnitude(images: Tensor) -> Tensor:
    """Per-pixel sqrt(dx^2 + dy^2) of forward differences in [0, 1] units: float64 [N, C, H-1, W-1].

    dx[i, j] = x[i, j+1] - x[i, j] and dy[i, j] = x[i+1, j] - x[i, j], on the pixels that
    have both a right and a lower neighbour.
    """
    _check_images(images)
    x = _unit(images)
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.square() + dy.square()).sqrt()


def sharpness(images: Tensor) -> float:
    """Mean gradient magnitude over pixels, channels and images (0 for a constant image)."""
    return float(gradient_magnitude(images).mean())


def sharpness_ratio(outputs: Tensor, targets: Tensor) -> float:
    """sharpness(outputs) / sharpness(targets): 1 as sharp as the targets, below 1 blurrier."""
    reference = sharpness(targets)
    if reference == 0:
        raise ValueError("the targets are constant images (sharpness 0); a sharpness ratio needs edges in them")
    return sharpness(outputs) / reference


def colourfulness_per_image(images: Tensor) -> Tensor:
    """Hasler & Suesstrunk's M per image, float64 [N], in 0..255 units.

    rg = R - G, yb = (R + G) / 2 - B; M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mu_rg^2 + mu_yb^2),
    means and (population) standard deviations over the image's pixels. Grey images (one
    channel, or R = G = B) score 0; a constant colour scores its 0.3 sqrt(mu_rg^2 + mu_yb^2).
    """
    _check_images(images)
    if images.shape[1] == 1:
        return torch.zeros(images.shape[0], dtype=torch.float64)
    r, g, b = images.double().flatten(2).unbind(1)  # each [N, H*W], 0..255
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    offset = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return spread + 0.3 * offset


def colourfulness(images: Tensor) -> float:
    """Mean of :func:`colourfulness_per_image` over the images."""
    return float(colourfulness_per_image(images).mean())


def pairwise_distance(values: Tensor) -> float:
    """Mean L1 distance between the K versions of each item: ``values`` [K >= 2, N, ...] (float).

    For every item n and every pair i < j: mean over the trailing dimensions of
    |values[i, n] - values[j, n]|; then averaged over pairs and items.
    """
    if values.dim() < 2 or values.shape[0] < 2:
        raise ValueError(f"need K >= 2 versions of each item, [K, N, ...], got {tuple(values.shape)}")
    flat = values.double().flatten(2)  # [K, N, D]
    pairs = [(flat[i] - flat[j]).abs().mean(1) for i, j in itertools.combinations(range(flat.shape[0]), 2)]
    return float(torch.stack(pairs).mean())


def diversity(outputs: Tensor) -> float:
    """Pixel diversity of uint8 ``outputs`` [K, N, C, H, W]: K outputs for each of N inputs, from K
    noise seeds; the mean pairwise L1 distance in [0, 1] units (0: the model ignores its noise)."""
    if outputs.dim() != 5:
        raise ValueError(f"expected [K, N, C, H, W] outputs, got {tuple(outputs.shape)}")
    _check_images(outputs[0], "outputs[0]")
    return pairwise_distance(_unit(outputs))
