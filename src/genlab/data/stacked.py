"""Stacked MNIST (Metz et al. 2017): three MNIST digits as the R, G and B channels.

1000 modes (one per digit triple), the mode-collapse benchmark of VEEGAN (Srivastava et
al. 2017) and PacGAN (Lin et al. 2018). Built from the MNIST files of ``standard.py``;
which digits are stacked is fixed by the seed. Labels are the mode ``100 r + 10 g + b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genlab.config import EXAMPLE_FILES, SEED, Range, at_least, one_of
from genlab.data import standard
from genlab.data.base import Classes, Image, Spec, TensorDataset
from genlab.registry import register_dataset

NUM_MODES = 1000


@dataclass
class StackedMNISTConfig(standard.StandardConfig):
    """The ``mnist`` keys (``channels`` must stay 0: the set is RGB by construction), plus sizes and seed."""

    n_train: int = 60000
    n_test: int = 10000
    seed: int = 0
    num_modes: ClassVar[int] = NUM_MODES  # one digit per channel; the modes metric classifies each channel
    bounds: ClassVar[dict[str, Range]] = {
        "channels": one_of(0, 3, note="RGB by construction; leave it at 0"),
        "n_train": at_least(1),
        "n_test": at_least(1),
        "seed": SEED,
    }
    example: ClassVar[dict] = {"root": EXAMPLE_FILES, "limit": 64, "n_train": 64, "n_test": 16}


def stacked_modes(channel_classes: Tensor) -> Tensor:
    """Mode index ``100 r + 10 g + b`` from per-channel digit classes ``[N, 3]``."""
    if channel_classes.dim() != 2 or channel_classes.shape[1] != 3:
        raise ValueError(f"need per-channel classes [N, 3], got {tuple(channel_classes.shape)}")
    return channel_classes.long() @ torch.tensor([100, 10, 1])


def stack_digits(images: Tensor, labels: Tensor, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` images whose R, G, B channels are random digits of ``images``.

    images: uint8 ``[M, 1, H, W]``; labels: ``[M]``. Returns uint8 ``[n, 3, H, W]`` and the
    mode index ``[n]`` of each.
    """
    pick = torch.randint(len(images), (n, 3), generator=torch.Generator().manual_seed(seed))
    return images[pick, 0], stacked_modes(labels[pick])


@register_dataset("stacked_mnist", StackedMNISTConfig)
def build(cfg: StackedMNISTConfig, split: str) -> TensorDataset:
    """``image`` uint8 [N, 3, S, S], ``label`` int64 [N]: the mode index in 0..999."""
    mnist = standard.build(
        standard.StandardConfig("mnist", cfg.root, cfg.download, cfg.image_size, 1, cfg.limit), split
    )
    n = cfg.n_train if split == "train" else cfg.n_test
    images, modes = stack_digits(mnist["image"], mnist["label"], n, seed=cfg.seed * 2 + (split == "test"))
    spec: Spec = {"image": Image(*images.shape[1:]), "label": Classes(tuple(f"{m:03d}" for m in range(NUM_MODES)))}
    return TensorDataset("stacked_mnist", spec, {"image": images, "label": modes})
