"""Checkpoints: state, never pickled code, written atomically.

A checkpoint is a folder ``checkpoints/ckpt-<images seen>/`` holding

- ``modules.safetensors``: every module's state, keys ``<module>.<param>``;
- ``training_state.pt``: optimisers, the step's own state, RNG states, data position,
  counters; only tensors and plain containers, read back with ``torch.load(weights_only=True)``;
- the export: ``model.safetensors`` (the exported model's weights alone) and ``model.yaml``
  (its model config, role and data spec), all that ``genlab.load`` reads.

The folder is written under a temporary name, fsynced and renamed, so a crash mid-write
never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from genlab.errors import RunError

MODULES_FILE = "modules.safetensors"
STATE_FILE = "training_state.pt"
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_INFO = "model.yaml"
EXPORT_FORMAT = 1
PREFIX = "ckpt-"


class Export(NamedTuple):
    weights: dict[str, Tensor]  # the exported module's state dict
    info: dict[str, Any]  # model config, role, data spec: written as model.yaml


def save_checkpoint(checkpoint_dir: Path, images_seen: int, modules: dict[str, nn.Module], state: dict[str, Any], keep: int,
                    export: Export | None = None) -> Path:
    """Write one checkpoint (and its export) atomically and keep only the newest ``keep``."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"{PREFIX}{images_seen:012d}"
    tmp = checkpoint_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    save_file(tensors, tmp / MODULES_FILE)
    torch.save(state, tmp / STATE_FILE)
    files = [tmp / MODULES_FILE, tmp / STATE_FILE]
    if export is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in export.weights.items()}, tmp / EXPORT_WEIGHTS)
        (tmp / EXPORT_INFO).write_text(yaml.safe_dump({"format": EXPORT_FORMAT, **export.info}, sort_keys=False))
        files += [tmp / EXPORT_WEIGHTS, tmp / EXPORT_INFO]
    for path in (*files, tmp):
        _fsync(path)
    if final.exists():  # the same point saved twice (e.g. a stop right on the cadence)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(checkpoint_dir)
    for old in list_checkpoints(checkpoint_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not checkpoint_dir.is_dir():
        return []
    found = [p for p in checkpoint_dir.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(run_dir: Path) -> Path:
    checkpoints = list_checkpoints(Path(run_dir) / "checkpoints")
    if not checkpoints:
        raise RunError(f"no checkpoint in {run_dir}/checkpoints; train the run first (genlab train CONFIG)")
    return checkpoints[-1]


def load_modules(checkpoint: Path, modules: dict[str, nn.Module]) -> None:
    """Load every module's state from ``modules.safetensors``, strictly."""
    tensors = load_file(checkpoint / MODULES_FILE)
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as err:
            raise RunError(f"{checkpoint} does not fit module {name!r} of this config: {err}") from None


def read_export(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The exported model's info (model.yaml) and weights of a checkpoint."""
    info_path = checkpoint / EXPORT_INFO
    if not info_path.is_file():
        raise RunError(f"{checkpoint} has no exported model ({EXPORT_INFO}); it was written by an older genlab")
    info = yaml.safe_load(info_path.read_text())
    if info.get("format") != EXPORT_FORMAT:
        raise RunError(f"{info_path} is export format {info.get('format')}; this genlab reads {EXPORT_FORMAT}")
    return info, load_file(checkpoint / EXPORT_WEIGHTS)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=True, map_location="cpu")


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain containers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached": cached},
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
