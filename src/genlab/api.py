"""The Python API: ``genlab.train(config)``, ``genlab.load(run_dir)`` and ``genlab.load_step(run_dir)``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab.config import Config, load_config, model_config_from_dict, override_config
from genlab.data.base import spec_from_json
from genlab.errors import ConfigError, RunError
from genlab.models import build_model
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


def load(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
         role: str | None = None) -> nn.Module:
    """The exported model of a run (a VAE, a GAN's EMA generator, a classifier) in eval mode.

    Builds only that model from the checkpoint's ``model.yaml`` and ``model.safetensors``
    (no discriminator, no optimiser), from the newest checkpoint that passes its checksums
    (an older one is used with a warning on stderr) unless ``checkpoint`` names one.
    Samplers have ``sample(n, generator=..., labels=...)``; VAEs also ``encode`` and
    ``decode`` (see ``genlab.models.protocols``).

    ``role`` asks for another module than the export, built alone in the same way, with the
    weights of the run's module of that name (from ``modules.safetensors``): e.g. a CycleGAN's
    ``role="G_BA"`` (its export is G_AB) or a GAN's ``role="D"``. The export's own role (or
    None) gives the export, so a GAN's ``role="G"`` is still its EMA generator.
    """
    path = ckpt.checkpoint_to_read(run_dir, checkpoint)
    info, weights = ckpt.read_export(path)
    cfg = model_config_from_dict(info["model"], source=str(path / ckpt.EXPORT_INFO))
    factories = build_model(cfg, spec_from_json(info["data"]["spec"]))
    role = role or info["role"]
    if role not in factories:
        raise ConfigError(f"model {cfg.name!r} of {run_dir} has no role {role!r}; it has {', '.join(factories)}")
    if role != info["role"]:
        weights = ckpt.read_module(path, role)
    model = factories[role]()
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        source = path / (ckpt.EXPORT_WEIGHTS if role == info["role"] else ckpt.MODULES_FILE)
        raise RunError(f"{source} does not fit the {role} its {ckpt.EXPORT_INFO} describes: {err}") from None
    return model.to(device).eval()


def load_step(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | Path | None = None):
    """The whole Step of a run (every module, e.g. G, D and G_ema) with trained weights, chosen as ``load`` does."""
    run_dir, config, spec = read_run(run_dir)
    step = build_step(config, spec, torch.device(device))
    ckpt.load_modules(ckpt.checkpoint_to_read(run_dir, checkpoint), step.modules)
    return step
