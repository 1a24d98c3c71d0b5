"""Networks: plain nn.Modules, one file per family, each registered by its module (every
module here is imported on the first lookup of ``genlab.registry.MODELS``).

A model builder reads only the data's spec and returns a factory per module role
(``{"vae": ...}`` or ``{"G": ..., "D": ...}``), so that training builds every role and
``genlab.load`` builds just the exported one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.config import ModelConfig, model_config_from_dict
from genlab.data.base import Classes, Image, Spec, spec_from_json
from genlab.errors import ConfigError, RunError
from genlab.registry import MODELS
from genlab.runs import checkpoint as ckpt
from genlab.runs.locations import resolve

ModuleFactories = dict[str, Callable[[], nn.Module]]


def build_model(cfg: ModelConfig, spec: Spec) -> ModuleFactories:
    """A factory per module role of ``cfg`` for data of ``spec``; config errors are raised here, before any is built."""
    return MODELS.get(cfg.name).builder(cfg, spec)


def build_modules(cfg: ModelConfig, spec: Spec) -> dict[str, nn.Module]:
    """Every module of ``cfg``, built in the builder's order (so a seed fixes all initial weights)."""
    return {role: make() for role, make in build_model(cfg, spec).items()}


def load(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    checkpoint: str | Path | None = None,
    role: str | None = None,
) -> nn.Module:
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
    run_dir = resolve(run_dir)
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


DEFAULT_EXAMPLE_SPEC: Spec = {"image": Image(1, 32, 32), "label": Classes(tuple("0123456789"))}


def examples(name: str) -> list[tuple[ModelConfig, Spec]]:
    """The configs and data specs the shared model tests build for model ``name``.

    A model config sets ``example_spec`` where one 32-pixel grey channel with 10 classes
    does not fit it (or a function of the config, None for the default, where its variants need
    different data), and
    ``example_variants`` (overrides such as ``{"conditional": True}``) for variants that must
    pass the same contract.
    """
    cls = MODELS.get(name).config_cls
    spec = getattr(cls, "example_spec", DEFAULT_EXAMPLE_SPEC)
    variants: tuple[dict[str, Any], ...] = getattr(cls, "example_variants", ({},))
    configs = [cls(name=name, **variant) for variant in variants]
    return [(cfg, (spec(cfg) or DEFAULT_EXAMPLE_SPEC) if callable(spec) else spec) for cfg in configs]
