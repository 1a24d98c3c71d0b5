"""Colour sprites: a coloured shape on a coloured, textured background, with its segmentation.

The shapes, their geometry and anti-aliasing are those of :mod:`genlab.data.sprites`
(dSprites-like, Matthey et al. 2017). What differs: the shape has a saturated hue; the
background is one of a few procedural textures (a smooth gradient, stripes, checks) in a
light and a dark tone of its own hue; and every image comes with a per-pixel label map
(0 = background, 1 + shape index where the shape covers at least half of the pixel).
Nothing is downloaded: a split is rendered from its seed.

With ``frames = T > 1`` an example is a short sequence: the shape keeps its shape, size
and colour, moves in a straight line (bouncing off the frame edges) and turns at a steady
rate over a fixed background; previous-frame -> next-frame pairs come from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from genlab.config import SEED, DataConfig, Range, at_least
from genlab.data import sprites
from genlab.data.base import Factors, Image, LabelMap, Spec, TensorDataset
from genlab.errors import ConfigError
from genlab.registry import register_dataset

TEXTURES = ("gradient", "stripes", "checks")
FACTORS = (*sprites.COLOR_FACTORS, "bg_hue", "bg_texture", "bg_angle")  # + "frame" in sequences
_STRIPE_PERIOD = 0.5  # in image units (the image spans 2): 8 px at 32 px, 16 px at 64 px
_MIN_HUE_GAP = 0.2  # of a turn between shape and background hues, so the shape always stands out
_SPEED_RANGE = (0.05, 0.15)  # pos_x / pos_y units per frame
_MAX_TURN = 0.25  # radians per frame, either way
_LIGHT, _DARK = (0.25, 0.90), (0.45, 0.65)  # (saturation, value) of the two background tones
_SPLIT_STREAM = {"train": 0, "test": 1}
_CHUNK_PIXELS = 1 << 20  # pixels per rendering chunk: several float [n, 3, S, S] temporaries


@dataclass
class ColorSpritesConfig(DataConfig):
    """Keys of the ``color_sprites`` dataset."""

    image_size: int = 32  # height = width in pixels; 32 and 64 are typical
    n_train: int = 20000  # examples: images, or sequences of `frames` images when frames > 1
    n_test: int = 2000
    seed: int = 0  # train and test draw from separate streams of this seed
    shapes: int = 3  # use the first `shapes` of square, ellipse, heart, triangle
    textures: tuple[str, ...] = field(default_factory=lambda: TEXTURES)  # background textures drawn from
    frames: int = 1  # T > 1: n sequences of T frames, stored frame after frame (N = n * T images)

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(8),
        "n_train": at_least(1),
        "n_test": at_least(1),
        "seed": SEED,
        "shapes": Range(1, len(sprites.SHAPES), note=", ".join(sprites.SHAPES)),
        "frames": at_least(1, "1 = stills"),
    }
    example: ClassVar[dict] = {"image_size": 16, "n_train": 16, "n_test": 4, "frames": 3}  # 48 and 12 images

    def __post_init__(self) -> None:
        unknown = [t for t in self.textures if t not in TEXTURES]
        if unknown or not self.textures:
            raise ConfigError(
                f"color_sprites textures must be a non-empty list of {list(TEXTURES)}, got {list(self.textures)}"
            )


@register_dataset("color_sprites", ColorSpritesConfig)
def build(cfg: ColorSpritesConfig, split: str) -> TensorDataset:
    """``image`` uint8 [N, 3, S, S], ``segmentation`` uint8 [N, 1, S, S], ``factors`` float32 [N, K].

    With frames = T > 1, example ``s * T + t`` is frame t of sequence s and K gains a "frame" column.
    """
    n = cfg.n_train if split == "train" else cfg.n_test
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    textures = [TEXTURES.index(t) for t in cfg.textures]
    factors = sample_factors(rng, n, cfg.shapes, textures)
    if cfg.frames > 1:
        factors = sequence_factors(rng, factors, cfg.frames)
    factors_t = torch.from_numpy(factors)
    images, labels = render_color_sprites(factors_t, cfg.image_size)
    names = FACTORS + (("frame",) if cfg.frames > 1 else ())
    spec: Spec = {
        "image": Image(3, cfg.image_size, cfg.image_size),
        "segmentation": LabelMap(("background", *sprites.SHAPES[: cfg.shapes]), cfg.image_size, cfg.image_size),
        "factors": Factors(names),
    }
    return TensorDataset("color_sprites", spec, {"image": images, "segmentation": labels, "factors": factors_t})


def sample_factors(rng: np.random.Generator, n: int, shapes: int = 3, textures: list[int] | None = None) -> np.ndarray:
    """float32 [n, 9] in the column order of FACTORS.

    The first six are those of coloured sprites (see :func:`genlab.data.sprites.sample_factors`);
    bg_hue in [0, 1) lies at least _MIN_HUE_GAP of a turn from the shape's hue; bg_texture is an
    index into TEXTURES; bg_angle in [0, pi) is the direction of the gradient, stripes or checks.
    """
    columns = sprites.sample_factors(rng, n, shapes, color=True).astype(np.float64)
    hue = columns[:, 5]
    bg_hue = (hue + rng.uniform(_MIN_HUE_GAP, 1.0 - _MIN_HUE_GAP, size=n)) % 1.0
    texture = rng.choice(np.asarray(textures if textures is not None else range(len(TEXTURES))), size=n)
    angle = rng.uniform(0.0, math.pi, size=n)
    return np.concatenate([columns, np.stack([bg_hue, texture, angle], axis=1)], axis=1).astype(np.float32)


def sequence_factors(rng: np.random.Generator, start: np.ndarray, frames: int) -> np.ndarray:
    """Factors of ``frames`` frames per start row: [n, 9] -> float32 [n * frames, 10] (+ "frame").

    Positions move at a constant velocity and reflect off 0 and 1; rotation turns at a constant
    rate and is not wrapped into [0, pi/2), so it stays continuous along a sequence.
    """
    n = len(start)
    speed = rng.uniform(*_SPEED_RANGE, size=n)
    heading = rng.uniform(0.0, 2.0 * math.pi, size=n)
    turn = rng.uniform(-_MAX_TURN, _MAX_TURN, size=n)
    t = np.arange(frames, dtype=np.float64)[None, :]  # [1, T]
    out = np.repeat(start.astype(np.float64)[:, None, :], frames, axis=1)  # [n, T, 9]
    out[:, :, 2] = (start[:, None, 2] + turn[:, None] * t) % (2.0 * math.pi)
    for column, direction in ((3, np.cos(heading)), (4, np.sin(heading))):
        travelled = start[:, None, column] + (speed * direction)[:, None] * t
        out[:, :, column] = 1.0 - np.abs(travelled % 2.0 - 1.0)  # reflect into [0, 1]
    frame = np.broadcast_to(t[:, :, None], (n, frames, 1))
    return np.concatenate([out, frame], axis=2).reshape(n * frames, -1).astype(np.float32)


def render_color_sprites(factors: Tensor, image_size: int) -> tuple[Tensor, Tensor]:
    """Draw factors [N, >= 9] -> images uint8 [N, 3, S, S] and label maps uint8 [N, 1, S, S]."""
    if factors.dim() != 2 or factors.shape[1] < len(FACTORS):
        raise ValueError(f"factors must be [N, {len(FACTORS)}] or wider, got {tuple(factors.shape)}")
    factors = factors.float()
    n = factors.shape[0]
    images = torch.empty(n, 3, image_size, image_size, dtype=torch.uint8)
    labels = torch.empty(n, 1, image_size, image_size, dtype=torch.uint8)
    grid = sprites.pixel_grid(image_size)
    chunk = max(1, _CHUNK_PIXELS // (image_size * image_size))
    for start in range(0, n, chunk):
        f = factors[start : start + chunk]
        coverage = sprites.shape_coverage(f, grid)[:, None]  # [n, 1, S, S]
        background = _backgrounds(f, grid)
        colour = sprites.hue_to_rgb(f[:, 5])[:, :, None, None]
        image = background.add_(coverage * (colour - background))
        images[start : start + chunk] = image.mul_(255.0).round_().to(torch.uint8)
        shape = f[:, 0].round().to(torch.uint8)[:, None, None, None] + 1
        labels[start : start + chunk] = torch.where(coverage >= 0.5, shape, torch.zeros_like(shape))
    return images, labels


def render_backgrounds(factors: Tensor, image_size: int) -> Tensor:
    """The backgrounds alone (no shape) of factors [N, >= 9]: uint8 [N, 3, S, S]."""
    background = _backgrounds(factors.float(), sprites.pixel_grid(image_size))
    return background.mul_(255.0).round_().to(torch.uint8)


def _backgrounds(f: Tensor, grid: Tensor) -> Tensor:
    """float32 [n, 3, S, S] in [0, 1]: each row's texture between its light and dark tone."""
    cos, sin = torch.cos(f[:, 8])[:, None, None], torch.sin(f[:, 8])[:, None, None]
    x, y = grid[None, None, :], grid[None, :, None]
    along, across = cos * x + sin * y, cos * y - sin * x  # [n, S, S], texture-aligned coordinates
    pixel = 2.0 / grid.numel()
    stripes = _stripes(along, pixel)
    mix = torch.empty_like(along)
    texture = f[:, 7].round().long()
    gradient = (0.5 + along / (2.0 * math.sqrt(2.0))).clamp(0.0, 1.0)  # corner to corner at 45 degrees
    checks = stripes + _stripes(across, pixel) * (1.0 - 2.0 * stripes)  # xor of two stripe sets
    for index, values in enumerate((gradient, stripes, checks)):  # the order of TEXTURES
        mask = texture == index
        mix[mask] = values[mask]
    light, dark = (_tone(f[:, 6], *tone)[:, :, None, None] for tone in (_LIGHT, _DARK))
    return light + mix[:, None] * (dark - light)


def _stripes(coordinate: Tensor, pixel: float) -> Tensor:
    """Anti-aliased square wave of period _STRIPE_PERIOD in [0, 1]: a one-pixel ramp at each edge."""
    w = 2.0 * math.pi / _STRIPE_PERIOD
    distance = torch.sin(w * coordinate) / w  # signed distance to the nearest edge, near the edges
    return (0.5 + distance / pixel).clamp_(0.0, 1.0)


def _tone(hue: Tensor, saturation: float, value: float) -> Tensor:
    """HSV -> RGB float32 [n, 3] for hues [n] at one saturation and value."""
    return value * (1.0 - saturation + saturation * sprites.hue_to_rgb(hue))
