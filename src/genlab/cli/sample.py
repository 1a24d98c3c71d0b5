"""genlab sample RUN -n 64 -o grid.png [--class K] [--truncation T]: draw samples from a trained run.

Conditional models draw every sample of class K with --class, else uniform classes.
--truncation T redraws latent values beyond +-T (BigGAN's trick: fidelity for variety).
--psi P truncates a style-based generator's w towards the mean w (StyleGAN's trick; 1 for none).
--text "a big red square in the upper left" draws every sample of that caption (text-to-image models).
--steps N, --sampler NAME and --guidance S set how a diffusion or flow-matching model samples: its
number of steps, its sampler (ddim or ancestral; euler or heun) and its classifier-free guidance
scale (1 = the plain conditional model, larger follows the class more closely).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from genlab.api import load
from genlab.cli.common import add_sampling, device_name, seed, set_sampling
from genlab.errors import ConfigError
from genlab.images import save_grid
from genlab.latent import style
from genlab.models.protocols import LatentSampler, TextConditional, is_conditional


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write a grid of samples from a run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder, e.g. runs/00000-quickstart")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("-o", "--output", default="samples.png", help="PNG to write")
    p.add_argument("--class", dest="label", type=int, metavar="K", help="class of every sample (conditional models)")
    p.add_argument("--truncation", type=float, metavar="T", help="redraw latent values beyond +-T")
    p.add_argument("--text", metavar="CAPTION", help="text-to-image models: the caption of every sample")
    p.add_argument("--psi", type=float, metavar="P", help="style-based models: truncation in W (1 none, 0 the mean)")
    add_sampling(p)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="cpu", type=device_name)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.n <= 100_000:  # one PNG grid: past that it is no longer an image anyone opens
        raise ConfigError(f"-n is the number of samples, in [1, 100000]; got {args.n}")
    if Path(args.output).suffix.lower() != ".png":
        raise ConfigError(f"-o is the PNG to write, e.g. samples.png; got {args.output!r}")
    model = load(args.run, device=args.device)
    if not isinstance(model, LatentSampler):
        raise ConfigError(f"{args.run} exports a {type(model).__name__}, which does not generate samples")
    if args.label is not None and not is_conditional(model):
        raise ConfigError(f"{args.run} is not class-conditional; sample it without --class")
    labels = None if args.label is None else torch.full((args.n,), args.label)
    if args.text is not None:
        if not isinstance(model, TextConditional):
            raise ConfigError(f"{args.run} is not conditioned on text; sample it without --text")
        labels = model.tokens([args.text]).expand(args.n, -1)
    set_sampling(model, args)
    generator = torch.Generator().manual_seed(args.seed)
    if args.psi is not None:
        images = style.sample_w(
            style.require_style_based(model), model.latents(args.n, generator, args.truncation), args.psi
        )
    else:
        images = model.sample(args.n, generator=generator, labels=labels, truncation=args.truncation)
    path = save_grid(images, args.output, nrow=max(1, round(math.sqrt(args.n))))
    shown = "" if args.label is None else f" of class {args.label}"
    shown += "" if args.text is None else f" of {args.text!r}"
    print(f"wrote {args.n} samples{shown} to {path}")
    return 0
