"""Pieces shared by sub-commands: config loading with overrides, run folders, output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from genlab.config import SEED, Config, DataConfig, load_config
from genlab.latent.sample import require_iterative


def device_name(text: str) -> str:
    """argparse type of ``--device``: a torch device this machine has (cpu, cuda, cuda:1, mps)."""
    import torch

    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", text):  # torch knows more (meta, xpu, ...) that cannot run a model here
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda, cuda:N or mps")
    device = torch.device(text)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no CUDA GPU; use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no MPS device; use cpu")
    return text


def seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in the range train.seed allows."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not SEED.allows(value):
        raise argparse.ArgumentTypeError(f"must be {SEED}, got {value}")
    return value


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", metavar="DIR", help="where data sets live (default: $GENLAB_DATA or ~/.cache/genlab/data)"
    )


def with_data_root(config: Config, args: argparse.Namespace) -> Config:
    """``--data-root`` replaces ``data.root`` for datasets read from files (not the sprites), and
    the ``root`` of data configs nested in it (``pairs``' ``base``: edges of MNIST)."""
    root = getattr(args, "data_root", None)
    return dataclasses.replace(config, data=_with_root(config.data, root)) if root else config


def _with_root(data: DataConfig, root: str) -> DataConfig:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if f.name == "root":
            changes["root"] = root
        elif isinstance(value, DataConfig):
            changes[f.name] = _with_root(value, root)
    return dataclasses.replace(data, **changes) if changes else data


def load_cli_config(path: str, args: argparse.Namespace) -> Config:
    return with_data_root(load_config(path, list(args.set or [])), args)


def add_sampling(parser: argparse.ArgumentParser) -> None:
    """--steps, --sampler and --guidance: how a diffusion or flow-matching model samples."""
    parser.add_argument("--steps", type=int, metavar="N", help="diffusion models: sampling steps")
    parser.add_argument("--sampler", metavar="NAME", help="diffusion: ddim or ancestral; flow matching: euler or heun")
    parser.add_argument(
        "--guidance", type=float, metavar="S", help="conditional diffusion models: guidance scale (1 none)"
    )


def set_sampling(model: object, args: argparse.Namespace) -> None:
    """Apply --steps, --sampler and --guidance, which only an iterative sampler (diffusion) has."""
    given = {k: getattr(args, k) for k in ("steps", "sampler", "guidance") if getattr(args, k, None) is not None}
    if given:
        flags = f"{', '.join(f'--{k}' for k in given)} {'does' if len(given) == 1 else 'do'} not apply"
        require_iterative(model, flags).set_sampling(**given)


def write_json(record: dict, path: str | Path | None) -> None:
    text = json.dumps(record, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
