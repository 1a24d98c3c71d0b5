"""Class control of conditional MNIST recipes (issue 25, claim 3): conditional accuracy against kimg.

Each recipe trains once per seed with a checkpoint every ``--every`` kimg; every checkpoint's
EMA generator then draws ``--n`` samples of balanced classes, which genlab's digit classifier
reads (conditional accuracy; chance is 0.1). The last checkpoint is also scored in full on
``--final-n`` samples: conditional accuracy, intra-class FID, FID-MNIST, precision/recall and
BigGAN's truncation curve (FID, precision, recall at truncation 2.0 ... 0.5), its eval card in
RUN/eval/. Writes OUT/class_control.png (accuracy against kimg of every recipe and seed run
into OUT so far; the curves are kept in OUT/curves.json) and OUT/RUN-classes.png (one row per
digit, one column per latent).

    PYTHONPATH=src python benchmarks/class_control.py --data-root ../shared/data \\
        [--configs configs/sngan_projection_mnist.yaml ...] [--kimg 200] [--every 20] [--seeds 0 1 2] \\
        [--set objective.regularisers.0.weight=0 ...] [--threads 2]

A recipe may carry its own overrides after an @, comma-separated, for a control run:
``configs/sngan_projection_mnist.yaml@objective.lr_d=2e-4,objective.lr_g=2e-4``.

``--ema-statistics RUN`` instead scores the EMA generator of any MNIST GAN run twice on ``--final-n``
samples (FID-MNIST, precision, recall, and for a conditional model its conditional accuracy): with BigGAN's standing batch-norm statistics (what genlab
exports) and with G's own running statistics copied in (what it exported before).

Needs the digit classifier (`genlab train-classifier`). For the ranking check on a second data set of
MNIST's shape, train a judge on it and pass it: `genlab train-classifier --out runs/judge-mnistm-grey
--set data.name=mnist_m --set data.channels=1`, then `--classifier RUN --configs
"configs/sngan_projection_mnist.yaml@data.name=mnist_m,data.channels=1"`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genlab
from genlab.config import Config, load_config
from genlab.images import save_grid
from genlab.metrics.classifier_features import classifier_accuracy, mnist_extractor
from genlab.metrics.evaluate import evaluate, sample_images, sample_labels
from genlab.metrics.settings import EvalSettings
from genlab.models.protocols import is_conditional
from genlab.plotting import draw_lines
from genlab.runs.checkpoint import kimg_of, list_checkpoints
from genlab.runs.folder import read_run
from recipes import loop_speed  # benchmarks/recipes.py: this script's folder is on sys.path

CONFIGS = ("configs/sngan_projection_mnist.yaml", "configs/cgan_mnist.yaml")
FINAL_METRICS = ("cond_acc", "intra_fid", "fid", "pr", "truncation")


def accuracy_curve(run_dir: Path, n: int, extractor) -> list[tuple[float, float]]:
    """(kimg, conditional accuracy on ``n`` balanced samples) for every checkpoint of the run."""
    curve = []
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):
        model = genlab.load(run_dir, checkpoint=checkpoint)
        images = sample_images(model, n, seed=0)
        kimg = kimg_of(checkpoint)
        curve.append((float(kimg), classifier_accuracy(extractor, images, sample_labels(model, n))))
    return curve


def class_grid(run_dir: Path, path: Path, columns: int = 10) -> None:
    """Row k: ``columns`` samples of class k, the same latents in every row."""
    model = genlab.load(run_dir)
    z = model.latents(columns, generator=torch.Generator().manual_seed(0))
    k = model.num_classes
    with torch.no_grad():
        images = model.decode(z.repeat(k, 1), torch.arange(k).repeat_interleave(columns))
    save_grid(images, path, nrow=columns)


def ema_statistics(run_dir: Path, n: int) -> None:
    """The export scored with its standing statistics and with the raw G's statistics copied in."""
    config = read_run(run_dir)[1]
    G, G_ema = (genlab.load_step(run_dir).modules[name] for name in ("G", "G_ema"))
    conditional = is_conditional(G_ema)  # any GAN with an EMA: the class reading only for conditional ones
    settings = EvalSettings(metrics=("cond_acc", "fid", "pr") if conditional else ("fid", "pr"), n=n, features="mnist")
    print("| EMA generator's batch-norm statistics | cond. accuracy | FID-MNIST | precision | recall |")
    print("|---|---|---|---|---|")
    for name in ("standing (its own samples)", "copied from G"):
        if name == "copied from G":
            G_ema.load_state_dict(dict(G_ema.state_dict()) | dict(G.named_buffers()))
        r, _ = evaluate(G_ema.eval(), config, settings, run_dir / "eval" / f"ema-statistics-{name.split()[0]}")
        accuracy = f"{r['conditional_accuracy']:.3f}" if conditional else ""
        print(f"| {name} | {accuracy} | {r['fid']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} |", flush=True)


def run_recipe(recipe: str, seed: int, args: argparse.Namespace) -> Config:
    """The config of ``recipe`` (``PATH[@key=value,...]``) for one seed, checkpointed every ``--every`` kimg."""
    path, _, own = recipe.partition("@")
    overrides = [f"data.root={args.data_root}", f"train.out_dir={args.out}", "train.progress_bar=false",
                 f"train.threads={args.threads}", f"train.seed={seed}", f"train.checkpoint_every_kimg={args.every}",
                 "train.keep_checkpoints=1000", *args.set, *filter(None, own.split(","))]
    return load_config(path, overrides + ([f"train.kimg={args.kimg}"] if args.kimg else []))


def label(recipe: str) -> str:
    path, _, own = recipe.partition("@")
    return Path(path).stem + (f" ({own})" if own else "")


def add_recipe_arguments(parser: argparse.ArgumentParser, configs: tuple[str, ...], every: float, n: int,
                         out: str) -> None:
    """The options of a benchmark that trains recipes over seeds (what :func:`run_recipe` reads) and scores
    their checkpoints on ``--n`` samples in a digit classifier's features."""
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--configs", nargs="+", default=list(configs))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--kimg", type=float, help="override each recipe's training length")
    parser.add_argument("--every", type=float, default=every, help="kimg between the curve's points")
    parser.add_argument("--n", type=int, default=n, help="samples per point of the curve")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for every recipe")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classifier", metavar="RUN", help="the judge: a digit classifier run (default: the zoo's)")
    parser.add_argument("--out", default=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recipe_arguments(parser, CONFIGS, every=20, n=2000, out="runs/bench-class-control")
    parser.add_argument("--final-n", type=int, default=10_000, help="samples for the last checkpoint's card; 0: none")
    parser.add_argument("--ema-statistics", metavar="RUN", help="only compare RUN's EMA batch-norm statistics")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ema_statistics:
        ema_statistics(Path(args.ema_statistics), args.final_n)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extractor = mnist_extractor(args.classifier)
    saved = out / "curves.json"
    curves: dict[str, tuple[list[float], list[float]]] = json.loads(saved.read_text()) if saved.is_file() else {}
    print("| recipe | seed | kimg | images/s | train s | cond. accuracy by kimg | final: cond. acc | intra-FID | "
          "FID-MNIST | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for recipe in args.configs:
        for seed in args.seeds:
            config = run_recipe(recipe, seed, args)
            start = time.perf_counter()
            run_dir = genlab.train(config)
            train_s = time.perf_counter() - start
            curve = accuracy_curve(run_dir, args.n, extractor)
            curves[f"{label(recipe)} s{seed}"] = ([k for k, _ in curve], [a for _, a in curve])
            saved.write_text(json.dumps(curves, indent=1))
            class_grid(run_dir, out / f"{run_dir.name}-classes.png")
            final = "| | | | |"
            if args.final_n:
                settings = EvalSettings(metrics=FINAL_METRICS, n=args.final_n, features="mnist", classifier=args.classifier)
                r, _ = evaluate(genlab.load(run_dir), config, settings, run_dir / "eval" / f"class-control-n{args.final_n}",
                                run=str(run_dir))
                final = (f"| {r['conditional_accuracy']:.3f} | {r['intra_fid']:.1f} | {r['fid']:.1f} | "
                         f"{r['precision']:.3f} | {r['recall']:.3f} |")
            by_kimg = ", ".join(f"{k:g}: {a:.2f}" for k, a in curve)
            print(f"| {label(recipe)} | {seed} | {config.train.kimg:g} | {loop_speed(run_dir)[1]:.0f} | "
                  f"{train_s:.0f} | {by_kimg} {final}", flush=True)
            draw_lines({"conditional accuracy (digit classifier)": curves}, "training kimg", out / "class_control.png",
                       ylims={"conditional accuracy (digit classifier)": (0.0, 1.0)})


if __name__ == "__main__":
    main()
