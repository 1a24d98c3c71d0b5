"""``unpaired``: two image domains side by side for unpaired translation (CycleGAN, Zhu et al. 2017).

``{name: unpaired, a: {data config}, b: {data config}}`` gives fields ``a`` and ``b`` of
N = min(len(a), len(b)) examples. Index i of ``a`` and of ``b`` are unrelated images: each
domain is shuffled independently with the dataset's seed, and the larger one is cut to N.
A grey domain is replicated to RGB when the other is RGB; different image sizes are an
error naming the keys to set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from genlab.config import SEED, DataConfig, Range
from genlab.data.base import Image, TensorDataset
from genlab.data.pairs import image_key
from genlab.errors import ConfigError
from genlab.registry import DATASETS, register_dataset

_SPLIT_STREAM = {"train": 0, "test": 1}


@dataclass
class UnpairedConfig(DataConfig):
    """Keys of the ``unpaired`` dataset: ``a`` and ``b`` are any data configs with one image field."""

    a: DataConfig
    b: DataConfig
    seed: int = 0  # the independent shuffles of a and b, per split

    bounds: ClassVar[dict[str, Range]] = {"seed": SEED}
    # A grey domain beside an RGB one (replicated to RGB), of different lengths (cut to the shorter).
    example: ClassVar[dict] = {
        "a": {"name": "sprites", "n_train": 64, "n_test": 16},
        "b": {"name": "color_sprites", "n_train": 48, "n_test": 12},
    }


@register_dataset("unpaired", UnpairedConfig)
def build(cfg: UnpairedConfig, split: str) -> TensorDataset:
    """``a`` and ``b`` uint8 [N, C, H, W], of the same shape, unrelated at each index."""
    domains = {}
    for side, sub in (("a", cfg.a), ("b", cfg.b)):
        data = DATASETS.get(sub.name).builder(sub, split)
        domains[side] = data[image_key(data.spec, f"unpaired (data.{side}: {sub.name})")]
    sizes = {side: tuple(x.shape[-2:]) for side, x in domains.items()}
    if sizes["a"] != sizes["b"]:
        raise ConfigError(
            f"unpaired: data.a gives {sizes['a'][0]}x{sizes['a'][1]} images but data.b gives "
            f"{sizes['b'][0]}x{sizes['b'][1]}; set data.a.image_size and data.b.image_size to "
            "the same value"
        )
    channels = max(x.shape[1] for x in domains.values())
    n = min(len(x) for x in domains.values())
    rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
    fields = {}
    for side, x in domains.items():
        order = torch.from_numpy(rng.permutation(len(x))[:n])
        fields[side] = x[order].expand(-1, channels, -1, -1).contiguous()  # grey -> RGB when the other is RGB
    field = Image(channels, *sizes["a"])
    return TensorDataset("unpaired", {"a": field, "b": field}, fields)
