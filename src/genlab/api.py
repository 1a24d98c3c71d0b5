"""The Python API: ``genlab.train(config)`` and ``genlab.load(run_dir)``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab.config import Config, load_config, override_config
from genlab.training import checkpoint as ckpt
from genlab.training.loop import build_step, train as _train
from genlab.training.run import read_run


def train(config: Config | str | Path | None = None, overrides: list[str] | None = None, resume: str | Path | None = None,
          stop_after_kimg: float | None = None) -> Path:
    """Train from a Config or a YAML path, with ``key=value`` overrides; returns the run folder."""
    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif config is not None:
        config = override_config(config, overrides or [])
    return _train(config, resume=resume, stop_after_kimg=stop_after_kimg)


def load(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | Path | None = None) -> nn.Module:
    """The exported model of a run (a VAE, or a GAN's EMA generator) in eval mode.

    Loads the latest checkpoint unless ``checkpoint`` names one. The model has
    ``sample(n, generator=...)``; VAEs also ``encode``, ``decode`` and ``reconstruct``.
    """
    step = load_step(run_dir, device, checkpoint)
    model = step.modules[step.export_name]
    model.eval()
    return model


def load_step(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | Path | None = None):
    """The whole Step of a run (every module, e.g. G, D and G_ema) with trained weights."""
    run_dir, config, spec = read_run(run_dir)
    step = build_step(config, spec, torch.device(device))
    ckpt.load_modules(Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir), step.modules)
    return step
