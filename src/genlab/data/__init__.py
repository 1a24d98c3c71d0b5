"""Datasets: real image sets, procedural sprites, image folders, toy mixtures and image pairs.

Each module registers its datasets with ``genlab.registry.DATASETS``, which imports every
module here on its first lookup.
"""

from __future__ import annotations

from genlab.config import DataConfig
from genlab.data.base import Batch, Classes, Factors, Image, LabelMap, Points, Spec, TensorDataset, Tokens
from genlab.registry import DATASETS


def load_dataset(cfg: DataConfig, split: str = "train") -> TensorDataset:
    """Build the ``split`` ("train" or "test") of the dataset ``cfg`` describes."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return DATASETS.get(cfg.name).builder(cfg, split)


__all__ = ["Batch", "Classes", "Factors", "Image", "LabelMap", "Points", "Spec", "TensorDataset", "Tokens", "load_dataset"]
