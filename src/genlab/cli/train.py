"""genlab train CONFIG [--set key=value ...] [--resume RUN] [--dry-run]"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from genlab import distributed
from genlab.api import load, train
from genlab.cli.common import add_data_root, load_cli_config, with_data_root
from genlab.config import config_to_dict, override_config
from genlab.distributed import print0
from genlab.errors import ConfigError
from genlab.models import build_model
from genlab.models.protocols import (
    DecoderLikelihood,
    ExactLikelihood,
    LatentSampler,
    LikelihoodBound,
    TextConditional,
    Translator,
    is_conditional,
)
from genlab.runs.folder import read_run
from genlab.training.loop import resume_config


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model from a YAML config", description=__doc__)
    p.add_argument("config", nargs="?", help="YAML config, e.g. configs/quickstart.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.kimg=50")
    p.add_argument("--resume", metavar="RUN", help="continue this run folder exactly from its latest checkpoint")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check every key and value range, print the resolved config "
        "and exit (with --resume, also build the model for the run's data; a new run's data is loaded, "
        "and checked against the model, only by training, before its run folder is made)",
    )
    p.add_argument(
        "--stop-after-kimg", type=float, metavar="KIMG", help="stop (with a checkpoint) after this many kimg"
    )
    add_data_root(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.config:
        config = load_cli_config(args.config, args)
        if args.resume:  # what the resumed run will use (a dry run printed the file's keys, not the run's)
            config = resume_config(Path(args.resume), config)
    elif args.resume:
        _, saved, spec = read_run(args.resume)
        config = with_data_root(override_config(saved, list(args.set or [])), args)
        build_model(config.model, spec)  # factories only: a ConfigError when the model cannot take the run's data
    else:
        raise ConfigError("give a config file (genlab train configs/quickstart.yaml) or --resume RUN")
    if args.dry_run:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False), end="")
        return 0
    run_dir = train(config, resume=args.resume, stop_after_kimg=args.stop_after_kimg)
    print0(f"run folder: {run_dir}")
    if (run_dir / "samples").is_dir():
        print0(f"images:     {run_dir / 'samples'}")
    if distributed.is_main():
        print("next, try:\n" + "\n".join(f"  {line}" for line in next_commands(run_dir)))
    return 0


def next_commands(run_dir: Path) -> list[str]:
    """What a person can do with the finished run, by what its exported model can do."""
    model = load(run_dir)
    lines = [f"genlab info {run_dir}"]
    if isinstance(model, LatentSampler):
        lines.append(f"genlab sample {run_dir} -n 64 -o samples.png")
    if is_conditional(model):
        lines.append(f"genlab sample {run_dir} --class 3 -n 16 -o class3.png")
    if isinstance(model, TextConditional):
        lines.append(f'genlab sample {run_dir} --text "a big red square in the upper left , upright" -n 16 -o red.png')
    if isinstance(model, Translator):
        lines.append(f"genlab translate {run_dir} INPUT_IMAGE_OR_DIR -o translated/")
    if isinstance(model, DecoderLikelihood):
        lines.append(f"genlab eval {run_dir}                 # test-set ELBO and importance-weighted NLL")
    elif isinstance(model, ExactLikelihood):
        lines.append(f"genlab eval {run_dir}                 # test-set negative log-likelihood, exact")
    elif isinstance(model, LikelihoodBound):
        lines.append(f"genlab eval {run_dir}                 # test-set bound on the negative log-likelihood")
    elif isinstance(model, LatentSampler):
        lines.append(f"genlab eval {run_dir} --metrics fid,pr  # sample quality")
    if isinstance(model, (LatentSampler, Translator)):
        lines.append(f"genlab studio {run_dir}   # explore it in the browser: samples, sliders, uploads, drawing")
    lines.append(f"tensorboard --logdir {run_dir.parent}")
    return lines
