"""genlab info RUN: what a run is, how far it got, and its latest figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from genlab.config import config_to_dict
from genlab.data.base import describe
from genlab.errors import RunError
from genlab.runs.checkpoint import good_checkpoint, list_checkpoints
from genlab.runs.folder import read_records, read_run, read_stats


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a run folder", description=__doc__)
    p.add_argument("run", help="run folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir, config, spec = read_run(args.run)
    print(f"run:         {run_dir}")
    print(f"data:        {config.data.name} ({describe(spec)})")
    checkpoints = list_checkpoints(run_dir / "checkpoints")
    print(f"checkpoints: {len(checkpoints)}" + (f", latest {checkpoints[-1].name}" if checkpoints else ""))
    if checkpoints:
        try:
            good, skipped = good_checkpoint(run_dir)
            verdict = f"{good.name}" + "".join(f"\n  damaged: {reason}" for reason in skipped)
        except RunError as err:
            verdict = f"none: {err}"
        print(f"newest good: {verdict}")
    if rows := read_stats(run_dir):
        last = rows[-1]
        print(f"progress:    {last['kimg']:g} of {config.train.kimg:g} kimg")
        print("latest stats: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("kimg", "iteration")))
    for record in read_records(Path(run_dir) / "metrics.jsonl"):
        print(f"metrics:     {json.dumps(record)}")
    print("config:")
    print("  " + yaml.safe_dump(config_to_dict(config), sort_keys=False).replace("\n", "\n  ").rstrip())
    return 0
