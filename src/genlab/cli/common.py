"""Pieces shared by sub-commands: config loading with overrides, run folders, output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genlab.config import Config, apply_overrides, config_from_dict, config_to_dict, load_config


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", metavar="DIR", help="where data sets live (default: $GENLAB_DATA or ~/.cache/genlab/data)")


def data_root_override(args: argparse.Namespace) -> list[str]:
    return [f"data.root={args.data_root}"] if getattr(args, "data_root", None) else []


def with_overrides(config: Config, overrides: list[str]) -> Config:
    if not overrides:
        return config
    return config_from_dict(apply_overrides(config_to_dict(config), overrides), source="--set")


def load_cli_config(path: str, args: argparse.Namespace) -> Config:
    return load_config(path, list(args.set or []) + data_root_override(args))


def write_json(record: dict, path: str | Path | None) -> None:
    text = json.dumps(record, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
