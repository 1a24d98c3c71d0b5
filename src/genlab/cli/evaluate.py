"""genlab eval RUN [--metrics NAME,...] [--n 10000] [--features inception|mnist|sprites]

Evaluates a trained run. Runs of models with an encoder (VAEs) default to nll (test-set
ELBO and importance-weighted NLL with its k); other runs to fid,kid,is,pr. Feature metrics
use the MNIST classifier for MNIST runs and Inception-v3 otherwise (--features sprites with
an attribute classifier run for sprites). Appends one line to
the run's metrics.jsonl, writes an eval card (card.json, card.md) and PNGs into
RUN/eval/<features>-n<N>-seed<S>/, and prints the results as JSON. Both name the checkpoint
scored and its kimg: the newest good one, or --checkpoint RUN/checkpoints/ckpt-... (its card
then goes to a folder of its own, ...-kimg<K>/).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from genlab.api import load
from genlab.cli.common import add_data_root, add_sampling, device_name, seed, set_sampling, with_data_root, write_json
from genlab.errors import RunError
from genlab.metrics.evaluate import card_folder, evaluate
from genlab.metrics.registry import metric_names
from genlab.metrics.settings import (
    ENCODER_METRICS,
    FEATURE_SPACES,
    SAMPLE_METRICS,
    EvalSettings,
    default_features,
    default_metrics,
)
from genlab.runs.checkpoint import checkpoint_to_read, kimg_of, list_checkpoints
from genlab.runs.folder import read_run
from genlab.runs.locations import output_dir, reference


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate a trained run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", help="run folder or zoo:NAME")
    p.add_argument(
        "--checkpoint",
        metavar="CKPT",
        help="score this checkpoint of the run (its folder RUN/checkpoints/ckpt-<images seen>, or that name) "
        "instead of the newest",
    )
    p.add_argument(
        "--metrics",
        help=f"comma-separated, from {','.join(metric_names())} (default: "
        f"{','.join(ENCODER_METRICS)} for models with a decoder likelihood (VAEs), else {','.join(SAMPLE_METRICS)})",
    )
    p.add_argument(
        "--n",
        type=int,
        default=10_000,
        help="generated samples; nll uses at most this many test images (default: %(default)s)",
    )
    p.add_argument(
        "--features", choices=FEATURE_SPACES, help="feature space of fid/kid/is/pr/nn (default: mnist for MNIST runs)"
    )
    p.add_argument(
        "--reference",
        choices=["train", "test"],
        default="train",
        help="real split for fid/kid/pr (default: %(default)s)",
    )
    p.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache)",
    )
    p.add_argument(
        "--classifier",
        metavar="RUN",
        help="the feature space's classifier (a run folder or zoo:NAME); default: the zoo's mnist-classifier "
        "for mnist, for sprites its sprites-attributes (textured backgrounds) or sprites-attributes-plain (plain)",
    )
    p.add_argument("--k", type=int, default=1000, help="importance samples for the IW log-likelihood (nll)")
    add_sampling(p)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="cpu", type=device_name)
    p.add_argument("-o", "--output", help="also write the JSON here")
    add_data_root(p)
    p.set_defaults(func=run)


def run_checkpoint(run_dir: Path, asked: str) -> Path:
    """The checkpoint ``asked`` (a folder or a folder's name) among ``run_dir``'s own: the run's config
    describes only its own weights."""
    folder = run_dir / "checkpoints"
    path = folder / Path(asked).name
    if Path(asked).name != asked and Path(asked).resolve() != path.resolve():
        raise RunError(f"--checkpoint {asked} is not one of {folder}'s checkpoints; pick one of them")
    if not path.is_dir():
        found = ", ".join(p.name for p in list_checkpoints(folder)) or "none"
        raise RunError(f"--checkpoint: {path} does not exist; the run's checkpoints: {found}")
    kimg_of(path)  # RunError unless it is named as a checkpoint
    return path


def run(args: argparse.Namespace) -> int:
    run_dir, config, _ = read_run(args.run)
    config = with_data_root(config, args)
    checkpoint = checkpoint_to_read(run_dir, args.checkpoint and run_checkpoint(run_dir, args.checkpoint))
    model = load(run_dir, device=args.device, checkpoint=checkpoint)
    set_sampling(model, args)
    metrics = args.metrics.split(",") if args.metrics else default_metrics(model)
    settings = EvalSettings(
        metrics=tuple(m.strip() for m in metrics if m.strip()),
        n=args.n,
        features=args.features or default_features(config.data.name),
        reference_split=args.reference,
        seed=args.seed,
        device=args.device,
        inception_weights=args.inception_weights,
        classifier=args.classifier,
        iw_k=args.k,
    )
    written = output_dir(run_dir)  # a zoo entry's eval goes to the cache
    folder = card_folder(settings, model) + (f"-kimg{kimg_of(checkpoint):g}" if args.checkpoint else "")
    out_dir = written / "eval" / folder
    start = time.perf_counter()
    results, card = evaluate(
        model, config, settings, out_dir, run=reference(run_dir), command=args.command_line, checkpoint=checkpoint
    )
    record = {
        "run": reference(run_dir),
        "checkpoint": checkpoint.name,
        "kimg": kimg_of(checkpoint),
        "metrics": list(settings.metrics),
        "features": settings.features,
        "n": settings.n,
        "reference_split": settings.reference_split,
        "seed": settings.seed,
        **results,
        "card": str(out_dir / "card.json"),
        "seconds": round(time.perf_counter() - start, 2),
    }
    with open(written / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    write_json(record, args.output)
    for warning in card["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
