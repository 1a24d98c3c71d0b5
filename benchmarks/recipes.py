"""Quality per CPU-second (issue 12): MNIST GAN and VAE recipes trained for the same wall-clock budget.

Each config trains for ``--minutes`` of loop time (``train.max_minutes``; ``train.kimg`` is
raised to ``--kimg-cap`` so that the clock, not the recipe's length, ends training; the
recipes here use constant learning rates, so nothing else changes), then its exported model
is scored with genlab's own metrics on ``--n`` samples: FID-MNIST, precision and recall in the
digit classifier's feature space against the training split, and the KL of the classifier's
class histogram to uniform; for a VAE also the test ELBO and importance-weighted NLL (``--iw-k``
samples, against the prior the VAE samples from). One table row per recipe: kimg reached,
images/s, FID, precision, recall, KL (and ELBO, NLL).

    PYTHONPATH=src python benchmarks/recipes.py --data-root ../shared/data [--configs A.yaml B.yaml]
        [--minutes 5] [--threads 1] [--n 10000] [--set objective.regularisers.0.weight=0 ...]

``--set`` applies the same overrides to every config (one lever at a time, for ablations).
Needs a trained digit classifier (``genlab train-classifier``) or ``--classifier RUN``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import genlab
from genlab.config import Config, load_config
from genlab.images import make_grid
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings
from genlab.plotting import font
from genlab.runs.folder import loop_seconds, read_stats

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["configs/gan2014_mnist.yaml", "configs/dcgan_mnist.yaml", "configs/fast_mnist_gan.yaml", "configs/vae_mnist.yaml",
           "configs/fast_mnist_vae.yaml"]
HEADER = ("| recipe | kimg | images/s | FID-MNIST | precision | recall | KL to uniform | test ELBO | IW NLL | train s | eval s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


seconds_at = loop_seconds  # the loop's seconds to a kimg, from stats.jsonl (genlab.runs.folder)


def loop_speed(run_dir: Path) -> tuple[float, float]:
    """(kimg reached, mean images/s of the loop) from stats.jsonl."""
    kimg = read_stats(run_dir)[-1]["kimg"]
    return kimg, 1000 * kimg / seconds_at(run_dir)


def train_and_score(config: Config, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    run_dir = genlab.train(config)
    train_s = time.perf_counter() - start
    kimg, speed = loop_speed(run_dir)
    likelihood = ("nll",) if config.objective.family == "vae" else ()
    settings = EvalSettings(metrics=("fid", "pr", "modes", *likelihood), n=args.n, features="mnist", seed=args.seed,
                            classifier=args.classifier, iw_k=args.iw_k)
    start = time.perf_counter()
    results, _ = evaluate(genlab.load(run_dir), config, settings, run_dir / "eval" / f"mnist-n{args.n}-seed{args.seed}",
                          run=str(run_dir))
    return {"run_dir": str(run_dir), "kimg": kimg, "images_per_sec": speed, "train_s": train_s,
            "eval_s": time.perf_counter() - start, **{k: v for k, v in results.items() if k != "mode_histogram"},
            "mode_histogram": results["mode_histogram"]}


def _nats(result: dict, key: str) -> str:
    return f"{result[key]:.1f}" if key in result else ""


def samples_figure(models: dict[str, torch.nn.Module], path: Path, n: int) -> None:
    """``n`` samples of each model (seed 0, its current sampling settings) side by side, each under its name:
    the samples PNG of benchmarks/diffusion.py and benchmarks/likelihood.py."""
    grids = {name: make_grid(model.sample(n, generator=torch.Generator().manual_seed(0)), nrow=6).permute(1, 2, 0)
             for name, model in models.items()}
    height = max(g.shape[0] for g in grids.values())
    image = Image.new("RGB", (sum(g.shape[1] + 20 for g in grids.values()), height + 30), (255, 255, 255))
    draw, left = ImageDraw.Draw(image), 0
    for name, grid in grids.items():
        tile = grid.expand(-1, -1, 3).numpy() if grid.shape[2] == 1 else grid.numpy()
        image.paste(Image.fromarray(tile), (left, 30))
        draw.text((left + 2, 8), name, fill=(0, 0, 0), font=font(14))
        left += grid.shape[1] + 20
    image.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=RECIPES, help="recipes, relative to the repository or absolute")
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget per recipe")
    p.add_argument("--kimg-cap", type=float, default=100_000.0, help="train.kimg during the timed runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (training uses each config's train.seed)")
    p.add_argument("--classifier", help="classifier run (default: the newest from genlab train-classifier)")
    p.add_argument("--iw-k", type=int, default=100, help="importance samples per test image for a VAE's NLL")
    p.add_argument("--out-dir", help="where the runs go (default: a new temporary folder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every config, e.g. --set objective.ema_decay=0")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="genlab-recipes-")

    rows = []
    for path in args.configs:
        config = load_config(ROOT / path, [
            f"data.root={args.data_root}", f"train.threads={args.threads}", f"train.max_minutes={args.minutes}",
            f"train.kimg={args.kimg_cap}", f"train.out_dir={out_dir}", "train.progress_bar=false",
            "train.tensorboard=false", "train.snapshot_every_kimg=0", *args.overrides,
        ])
        result = {"config": path, "overrides": args.overrides, "minutes": args.minutes, "threads": args.threads,
                  **train_and_score(config, args)}
        print(json.dumps(result), flush=True)
        name = Path(path).stem + "".join(f" {o}" for o in args.overrides)
        rows.append(f"| {name} | {result['kimg']:.1f} | {result['images_per_sec']:.0f} | {result['fid']:.1f} | "
                    f"{result['precision']:.3f} | {result['recall']:.3f} | {result['kl_to_uniform']:.4f} | "
                    f"{_nats(result, 'elbo_nats')} | {_nats(result, 'iw_nll_nats')} | {result['train_s']:.0f} | {result['eval_s']:.0f} |")
    print(f"\n{args.minutes:g} min of training per recipe, {args.threads} thread(s), {args.n} samples, eval seed {args.seed}")
    print(HEADER, *rows, sep="\n")


if __name__ == "__main__":
    main()
