"""The Python API: ``genlab.train(config)``, ``genlab.load(run_dir)`` and ``genlab.load_step(run_dir)``.

``load`` builds one exported model and lives with the models (:func:`genlab.models.load`), so
that metrics can load a run without the API; ``load_step`` builds a whole training Step.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.config import Config, load_config, override_config
from genlab.models import load
from genlab.runs import checkpoint as ckpt
from genlab.runs.folder import read_run
from genlab.training.loop import build_step
from genlab.training.loop import train as _train

__all__ = ["load", "load_step", "train"]


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | None = None,
    resume: str | Path | None = None,
    stop_after_kimg: float | None = None,
) -> Path:
    """Train from a Config or a YAML path, with ``key=value`` overrides; returns the run folder."""
    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif config is not None:
        config = override_config(config, overrides or [])
    return _train(config, resume=resume, stop_after_kimg=stop_after_kimg)


def load_step(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | Path | None = None):
    """The whole Step of a run (every module, e.g. G, D and G_ema) with trained weights, chosen as ``load`` does."""
    run_dir, config, spec = read_run(run_dir)
    step = build_step(config, spec, torch.device(device))
    ckpt.load_modules(ckpt.checkpoint_to_read(run_dir, checkpoint), step.modules)
    return step
