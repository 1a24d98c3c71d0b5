"""MNIST-M (Ganin et al. 2016): MNIST digits blended over colour photographs.

Each digit is combined with a random crop of a photo by the absolute difference
``|crop - digit|`` per channel, as in the paper's construction: the strokes invert the
photo's colours, so the digit's shape stays while its colours and texture come from the
photo. The paper cut its crops from BSDS500; genlab cuts them from the photographs shipped
with scikit-image (the ``photos`` data set: offline, train and test crops from disjoint
regions). Which crop goes with which digit is fixed by the seed.

The domain pair MNIST <-> MNIST-M shares its content (the digit), which is what unpaired
translation (CycleGAN) must keep. ``channels: 1`` gives MNIST-M's luma, a second grey data
set of MNIST's shape and classes (for checking that a recipe's ranking holds beyond MNIST).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from genlab.config import EXAMPLE_FILES, SEED, Range, one_of
from genlab.data import standard
from genlab.data.base import Image, TensorDataset
from genlab.data.photos import EVERYDAY, PHOTOS, photo_crops
from genlab.errors import ConfigError
from genlab.registry import register_dataset

_SPLIT_STREAM = {"train": 0, "test": 1}
# ITU-R 601 luma weights (PIL's "L" conversion), for the grey variant
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@dataclass
class MNISTMConfig(standard.StandardConfig):
    """The ``mnist`` keys (root, limit, image_size), plus the photos the backgrounds come from and the seed.

    ``channels``: 0 or 3 gives MNIST-M's colour images, 1 their luma.
    """

    seed: int = 0
    photos: tuple[str, ...] = field(default_factory=lambda: EVERYDAY)  # names from genlab.data.photos.PHOTOS
    crop_scale: tuple[float, float] = (0.15, 0.4)  # crop side as a fraction of the photo's shorter side

    bounds: ClassVar[dict[str, Range]] = {
        **standard.StandardConfig.bounds,
        "seed": SEED,
        "channels": one_of(0, 1, 3, note="0 or 3: colour, as Ganin et al.; 1: grey"),
        "crop_scale": Range(0, 1, low_open=True),
    }
    example: ClassVar[dict] = {"root": EXAMPLE_FILES, "limit": 64}

    def __post_init__(self) -> None:
        unknown = [p for p in self.photos if p not in PHOTOS]
        if unknown or not self.photos:
            raise ConfigError(f"mnist_m: unknown photo(s) {unknown or '(none given)'}; pick from {list(PHOTOS)}")


def blend(digits: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """MNIST-M's combination: ``|background - digit|`` per channel. digits uint8 [N, 1, S, S], backgrounds
    uint8 [N, 3, S, S] -> uint8 [N, 3, S, S]."""
    return (backgrounds.short() - digits.short()).abs().to(torch.uint8)


@register_dataset("mnist_m", MNISTMConfig)
def build(cfg: MNISTMConfig, split: str) -> TensorDataset:
    """``image`` uint8 [N, 3 (or 1), S, S], ``label`` int64 [N]: the digit."""
    mnist = standard.build(dataclasses.replace(cfg, name="mnist", channels=1), split)
    digits = mnist["image"]
    size = digits.shape[-1]
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    images = blend(digits, photo_crops(rng, len(digits), size, split, cfg.photos, crop_scale=cfg.crop_scale))
    if cfg.channels == 1:
        images = (images.float() * LUMA).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    spec = {"image": Image(images.shape[1], size, size), "label": mnist.spec["label"]}
    return TensorDataset("mnist_m", spec, {"image": images, "label": mnist["label"]})
