"""genlab eval RUN: likelihood figures of a trained VAE on its test split.

Prints and writes JSON (``metrics.jsonl`` in the run folder gets one line per call).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from genlab.api import load
from genlab.cli.common import add_data_root, data_root_override, with_overrides, write_json
from genlab.data import load_dataset
from genlab.errors import ConfigError
from genlab.images import to_model
from genlab.metrics.likelihood import evaluate_likelihood
from genlab.models.vae import VAE
from genlab.training.run import read_run


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a trained run", description=__doc__)
    p.add_argument("run", help="run folder")
    p.add_argument("--k", type=int, default=1000, help="importance samples for the IW log-likelihood")
    p.add_argument("--n", type=int, default=0, help="test images to use (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--output", help="also write the JSON here")
    add_data_root(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_dir, config, _ = read_run(args.run)
    model = load(run_dir, device=args.device)
    if not isinstance(model, VAE):
        raise ConfigError(f"{run_dir} holds a {config.model.name}; likelihoods need a VAE run")
    test = load_dataset(with_overrides(config, data_root_override(args)).data, "test")
    images = test.x[: args.n or None]
    start = time.perf_counter()
    record = {"run": str(run_dir), "split": "test", **evaluate_likelihood(model, to_model(images).to(args.device), args.k, seed=args.seed)}
    record["seconds"] = round(time.perf_counter() - start, 2)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    write_json(record, args.output)
    return 0
