"""genlab sample RUN -n 64 -o grid.png: draw samples from a trained run."""

from __future__ import annotations

import argparse
import math

import torch

from genlab.api import load
from genlab.images import save_grid


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="write a grid of samples from a run", description=__doc__)
    p.add_argument("run", help="run folder, e.g. runs/00000-quickstart")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("-o", "--output", default="samples.png", help="PNG to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load(args.run, device=args.device)
    images = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
    path = save_grid(images, args.output, nrow=max(1, round(math.sqrt(args.n))))
    print(f"wrote {args.n} samples to {path}")
    return 0
