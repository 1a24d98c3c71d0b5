"""Procedural sprites with known factors of variation: the embedded default dataset.

Like dSprites (Matthey et al. 2017): one white shape on black, varied by shape, scale,
rotation and position, optionally colour. Nothing is downloaded; a split is rendered
from its seed in about a second, and the true factor values come with every image so
that disentanglement and latent-traversal tools can be checked against ground truth.

Differences from dSprites: factors are drawn uniformly at random (not an exhaustive
grid), edges are anti-aliased, rotation spans [0, pi/2) for every shape and a fourth
shape (triangle) and a hue factor are available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from genlab.config import SEED, DataConfig, Range, at_least
from genlab.data.base import Factors, Image, Spec, TensorDataset
from genlab.registry import register_dataset

SHAPES = ("square", "ellipse", "heart", "triangle")
FACTORS = ("shape", "scale", "rotation", "pos_x", "pos_y")
COLOR_FACTORS = (*FACTORS, "hue")

SCALE_RANGE = (0.5, 1.0)  # relative size; 1.0 is a shape of radius MAX_RADIUS
# Every shape is distinguishable over a quarter turn (the square repeats after one),
# so rotation stays recoverable from pixels without a per-shape range.
ROTATION_RANGE = (0.0, math.pi / 2)
MAX_RADIUS = 0.4  # in image units, where the image spans [-1, 1]
_CENTRE_SPAN = 1.0 - 1.1 * MAX_RADIUS  # centres stay this far from the middle, shapes in frame
_SPLIT_STREAM = {"train": 0, "test": 1}  # independent random streams per split from one seed
_CHUNK_PIXELS = 1 << 22  # pixels rendered per chunk: bounds memory at about 16 MB a temporary


@dataclass
class SpritesConfig(DataConfig):
    """Keys of the ``sprites`` dataset."""

    image_size: int = 32  # height = width in pixels; 28, 32 and 64 are typical
    n_train: int = 20000
    n_test: int = 2000
    seed: int = 0  # train and test draw from separate streams of this seed
    color: bool = False  # RGB with a random hue factor; 1-channel grey otherwise
    shapes: int = 3  # use the first `shapes` of square, ellipse, heart, triangle

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(8),
        "n_train": at_least(1),
        "n_test": at_least(1),
        "seed": SEED,
        "shapes": Range(1, len(SHAPES), note=", ".join(SHAPES)),
    }
    example: ClassVar[dict] = {"n_train": 64, "n_test": 16}


@register_dataset("sprites", SpritesConfig)
def build(cfg: SpritesConfig, split: str) -> TensorDataset:
    """Render the split: ``image`` uint8 [N, C, S, S] (C = 3 if cfg.color else 1), ``factors`` float32 [N, K]."""
    n = cfg.n_train if split == "train" else cfg.n_test
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    factors = torch.from_numpy(sample_factors(rng, n, cfg.shapes, cfg.color))
    images = render_sprites(factors, cfg.image_size)
    spec: Spec = {
        "image": Image(images.shape[1], cfg.image_size, cfg.image_size),
        "factors": Factors(COLOR_FACTORS if cfg.color else FACTORS),
    }
    return TensorDataset("sprites", spec, {"image": images, "factors": factors})


def sample_factors(rng: np.random.Generator, n: int, shapes: int = 3, color: bool = False) -> np.ndarray:
    """Draw n factor vectors, float32 [n, K] in the column order of FACTORS (+ "hue").

    shape is an index into SHAPES; scale in SCALE_RANGE; rotation in radians in
    ROTATION_RANGE; pos_x, pos_y in [0, 1] (left/top to right/bottom); hue in [0, 1).
    """
    columns = [
        rng.integers(0, shapes, size=n).astype(np.float64),
        rng.uniform(*SCALE_RANGE, size=n),
        rng.uniform(*ROTATION_RANGE, size=n),
        rng.uniform(0.0, 1.0, size=n),
        rng.uniform(0.0, 1.0, size=n),
    ]
    if color:
        columns.append(rng.uniform(0.0, 1.0, size=n))
    return np.stack(columns, axis=1).astype(np.float32)


def render_sprites(factors: Tensor, image_size: int) -> Tensor:
    """Draw sprites from factors [N, 5] (grey) or [N, 6] (with hue) -> uint8 [N, C, S, S]."""
    if factors.dim() != 2 or factors.shape[1] not in (len(FACTORS), len(COLOR_FACTORS)):
        raise ValueError(f"factors must be [N, 5] or [N, 6], got {tuple(factors.shape)}")
    factors = factors.float()
    n = factors.shape[0]
    channels = 3 if factors.shape[1] == len(COLOR_FACTORS) else 1
    out = torch.empty(n, channels, image_size, image_size, dtype=torch.uint8)
    grid = pixel_grid(image_size)
    chunk = max(1, _CHUNK_PIXELS // (image_size * image_size))
    for start in range(0, n, chunk):
        f = factors[start : start + chunk]
        coverage = shape_coverage(f, grid)  # [n, S, S] in [0, 1]
        coverage = coverage[:, None] * hue_to_rgb(f[:, 5])[:, :, None, None] if channels == 3 else coverage[:, None]
        out[start : start + chunk] = coverage.mul_(255.0).round_().to(torch.uint8)
    return out


def pixel_grid(image_size: int) -> Tensor:
    """Pixel centres in image units, float32 [S] spanning (-1, 1): left/top to right/bottom."""
    return (torch.arange(image_size, dtype=torch.float32) + 0.5) * (2.0 / image_size) - 1.0


def shape_coverage(f: Tensor, grid: Tensor) -> Tensor:
    """Fraction of each pixel inside the shape of factors f [n, >= 5]: float32 [n, S, S]."""
    radius = f[:, 1] * MAX_RADIUS
    cx = (2.0 * f[:, 3] - 1.0) * _CENTRE_SPAN
    cy = (2.0 * f[:, 4] - 1.0) * _CENTRE_SPAN
    cos, sin = torch.cos(f[:, 2]), torch.sin(f[:, 2])
    dx = grid[None, None, :] - cx[:, None, None]  # columns: x grows to the right
    dy = grid[None, :, None] - cy[:, None, None]  # rows: y grows downwards
    # Pixel coordinates in each shape's own frame, where the shape fits the unit disc.
    u = (cos[:, None, None] * dx + sin[:, None, None] * dy) / radius[:, None, None]
    v = (cos[:, None, None] * dy - sin[:, None, None] * dx) / radius[:, None, None]
    distance = torch.empty_like(u)
    shape = f[:, 0].round().long()
    for index, sdf in enumerate(_SDFS):
        mask = shape == index
        if mask.any():
            distance[mask] = sdf(u[mask], v[mask])
    # Signed distance in pixels -> coverage: a one-pixel linear ramp across the edge.
    pixel = 2.0 / grid.numel()
    return (0.5 - distance * radius[:, None, None] / pixel).clamp_(0.0, 1.0)


# Signed distance functions in the shape's unit frame (negative inside), after
# Inigo Quilez's 2-D distance functions. v points down the image, so upright shapes flip it.


def _square(u: Tensor, v: Tensor) -> Tensor:
    qx, qy = u.abs() - 0.75, v.abs() - 0.75
    outside = torch.hypot(qx.clamp(min=0.0), qy.clamp(min=0.0))
    return outside + torch.maximum(qx, qy).clamp(max=0.0)


def _ellipse(u: Tensor, v: Tensor, a: float = 1.0, b: float = 0.55) -> Tensor:
    k0 = torch.hypot(u / a, v / b)
    k1 = torch.hypot(u / (a * a), v / (b * b))
    # The approximation k0 (k0 - 1) / k1 is 0/0 at the very centre, which is inside.
    return torch.where(k1 > 1e-6, k0 * (k0 - 1.0) / k1.clamp(min=1e-6), torch.full_like(u, -b))


def _heart(u: Tensor, v: Tensor, k: float = 0.63) -> Tensor:
    # iq's heart spans x in [-0.6, 0.6], y in [0, 1.1]; scale by k and centre it.
    x, y = (u * k).abs(), 0.55 - v * k
    lobe = torch.hypot(x - 0.25, y - 0.75) - math.sqrt(2.0) / 4.0
    t = 0.5 * (x + y).clamp(min=0.0)
    body = torch.sqrt(torch.minimum(x**2 + (y - 1.0) ** 2, (x - t) ** 2 + (y - t) ** 2))
    body = body * torch.sign(x - y)
    return torch.where(x + y > 1.0, lobe, body) / k


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    # Equilateral, circumradius 1, apex up; r is half the side.
    r, k = math.sqrt(3.0) / 2.0, math.sqrt(3.0)
    x, y = u.abs() - r, -v + r / k
    fold = x + k * y > 0.0
    x, y = torch.where(fold, (x - k * y) / 2.0, x), torch.where(fold, (-k * x - y) / 2.0, y)
    x = x - x.clamp(-2.0 * r, 0.0)
    return -torch.hypot(x, y) * torch.sign(y)


_SDFS = (_square, _ellipse, _heart, _triangle)  # same order as SHAPES


def hue_to_rgb(hue: Tensor) -> Tensor:
    """Fully saturated, full-value colours: hue [n] in [0, 1) -> float32 [n, 3]."""
    offsets = torch.tensor([0.0, 4.0, 2.0])
    return ((hue[:, None] * 6.0 + offsets) % 6.0 - 3.0).abs().sub(1.0).clamp(0.0, 1.0)
