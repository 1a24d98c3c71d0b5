"""``photos``: random crops of the colour photographs shipped inside scikit-image's wheel.

A small set of real colour images that needs no download (skimage.data's astronaut,
coffee, chelsea, rocket, ...; only those stored in the installed package, never the
ones it fetches with pooch). Each example is a square crop of a random photo at a random
scale, resized to ``image_size``. Train and test crops never share a pixel: the test split
crops from the last ``test_fraction`` of every photo along its longer side, the train split
from the rest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from PIL import Image as PILImage

from genlab.config import SEED, DataConfig, Range, at_least, one_of
from genlab.data.base import Image, TensorDataset
from genlab.errors import ConfigError
from genlab.registry import register_dataset

# Name -> the skimage.data function returning it (uint8 [H, W, 3]); all load from the wheel.
PHOTOS = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "motorcycle": "stereo_motorcycle",  # the left view of the stereo pair
    "hubble_deep_field": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "retina": "retina",
}
EVERYDAY = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")  # the default: no scientific images
_SPLIT_STREAM = {"train": 0, "test": 1}


@dataclass
class PhotosConfig(DataConfig):
    """Keys of the ``photos`` dataset."""

    image_size: int = 64  # crops are resized to image_size x image_size
    n_train: int = 5000
    n_test: int = 500
    seed: int = 0
    channels: int = 3  # 1 = grey (ITU-R 601 luma), 3 = RGB
    photos: tuple[str, ...] = field(default_factory=lambda: EVERYDAY)  # names from PHOTOS
    test_fraction: float = 0.25  # share of each photo's longer side kept for test crops
    crop_scale: tuple[float, float] = (0.15, 0.4)  # crop side as a fraction of the photo's shorter side

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(1),
        "n_train": at_least(1),
        "n_test": at_least(1),
        "seed": SEED,
        "channels": one_of(1, 3, note="grey or RGB"),
        "test_fraction": Range(0, 1, low_open=True, high_open=True),
        "crop_scale": Range(0, 1, low_open=True),
    }
    example: ClassVar[dict] = {"image_size": 16, "n_train": 32, "n_test": 8, "photos": ["astronaut", "coffee"]}

    def __post_init__(self) -> None:
        unknown = [p for p in self.photos if p not in PHOTOS]
        if unknown or not self.photos:
            raise ConfigError(f"photos: unknown photo(s) {unknown or '(none given)'}; pick from {list(PHOTOS)}")
        if len(self.crop_scale) != 2 or self.crop_scale[0] > self.crop_scale[1]:
            raise ConfigError(f"photos crop_scale must be [low, high] with low <= high, got {list(self.crop_scale)}")


@register_dataset("photos", PhotosConfig)
def build(cfg: PhotosConfig, split: str) -> TensorDataset:
    """``image`` uint8 [N, channels, image_size, image_size] of crops."""
    n = cfg.n_train if split == "train" else cfg.n_test
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    x = photo_crops(rng, n, cfg.image_size, split, cfg.photos, cfg.channels, cfg.test_fraction, cfg.crop_scale)
    return TensorDataset("photos", {"image": Image(cfg.channels, cfg.image_size, cfg.image_size)}, {"image": x})


def photo_crops(
    rng: np.random.Generator,
    n: int,
    size: int,
    split: str,
    photos: tuple[str, ...],
    channels: int = 3,
    test_fraction: float = 0.25,
    crop_scale: tuple[float, float] = (0.15, 0.4),
) -> torch.Tensor:
    """uint8 [n, channels, size, size]: square crops of random ``photos`` at random scales, from the split's region."""
    mode = "L" if channels == 1 else "RGB"
    images = [load_photo(name).convert(mode) for name in photos]
    which = rng.integers(0, len(images), size=n)
    crops = []
    for index in which:
        photo = images[index]
        box = crop_box(rng, photo.width, photo.height, split, test_fraction, crop_scale)
        crop = photo.resize((size, size), PILImage.Resampling.LANCZOS, box=box)
        crops.append(np.asarray(crop, dtype=np.uint8))
    x = torch.from_numpy(np.stack(crops))
    return x[:, None] if channels == 1 else x.permute(0, 3, 1, 2).contiguous()  # HWC -> CHW


def crop_box(
    rng: np.random.Generator, width: int, height: int, split: str, test_fraction: float, scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """A square (left, top, right, bottom) inside the split's region of a width x height photo.

    The test region is the last test_fraction of the longer side; a crop larger than its
    region is shrunk to fit.
    """
    wide = width >= height
    long_side = width if wide else height
    cut = round(long_side * (1.0 - test_fraction))
    start, end = (cut, long_side) if split == "test" else (0, cut)
    short_side = height if wide else width
    side = min(round(rng.uniform(*scale) * short_side), end - start, short_side)
    along = int(rng.integers(start, end - side + 1))
    across = int(rng.integers(0, short_side - side + 1))
    left, top = (along, across) if wide else (across, along)
    return left, top, left + side, top + side


@functools.cache
def load_photo(name: str) -> PILImage.Image:
    """The named photo from skimage.data, read from the installed package (never downloaded)."""
    import skimage.data

    array = getattr(skimage.data, PHOTOS[name])()
    array = array[0] if isinstance(array, tuple) else array  # stereo_motorcycle: (left, right, disparity)
    return PILImage.fromarray(np.ascontiguousarray(array[..., :3]))
