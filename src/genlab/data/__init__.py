"""Datasets: real image sets, procedural sprites, image folders, toy mixtures, image pairs and crowds.

Each module registers its datasets with ``genlab.registry.DATASETS``, which imports every
module here on its first lookup.
"""

from __future__ import annotations

from typing import Any

from genlab.config import DataConfig
from genlab.data.base import (
    Batch,
    Classes,
    Clusters,
    Factors,
    Image,
    LabelMap,
    Points,
    Spec,
    TensorDataset,
    Tokens,
    Trajectories,
)
from genlab.data.clusters import check_nested, with_clusters
from genlab.registry import DATASETS, BuilderRegistry


def load_dataset(cfg: DataConfig, split: str = "train") -> TensorDataset:
    """Build the ``split`` ("train" or "test") of the dataset ``cfg`` describes."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    check_nested(cfg)
    build = DATASETS.get(cfg.name).builder
    data = build(cfg, split)
    return with_clusters(data, cfg, split, build) if cfg.clusters else data


def example_configs(registry: BuilderRegistry = DATASETS) -> dict[str, dict[str, Any] | None]:
    """Every registered data set's example config (its config class's ``example`` with the set's ``name``),
    by name (in name order); None for a set without one. ``EXAMPLE_FILES`` values are for the tests to fill in."""
    return {
        entry.name: None if entry.config_cls.example is None else {"name": entry.name, **entry.config_cls.example}
        for entry in sorted(registry.entries(), key=lambda entry: entry.name)
    }


__all__ = [
    "Batch",
    "Classes",
    "Clusters",
    "Factors",
    "Image",
    "LabelMap",
    "Points",
    "Spec",
    "TensorDataset",
    "Tokens",
    "Trajectories",
    "load_dataset",
]
