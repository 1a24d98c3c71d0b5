"""DCGAN on MNIST: training speed and health of our 28-pixel recipe, and the health monitor
catching the PyTorch DCGAN example's failure.

1. ``configs/dcgan_mnist.yaml`` for its 120 kimg (or ``--kimg``): images/s, the last window's
   D(x), D(G(z)), sample diversity, health warnings, and (when a digit classifier is trained,
   ``genlab train-classifier``) FID in its feature space and class coverage of G_ema's samples.
2. The common PyTorch DCGAN example's setup on MNIST: its 64-pixel networks (ngf = ndf = 64),
   batch 128, Adam 2e-4 with beta1 0.5, BCE (our minimax D + non-saturating G), no EMA, for
   ``--failure-iterations`` iterations. Reference on the 2-core development machine: about 70
   images/s, and its D wins within about 100 iterations (D(x) = 1.00, G loss about 40). We
   report whether and when the health monitor says so.

    python benchmarks/dcgan_mnist.py --data-root ../shared/data [--kimg 120] [--failure-iterations 100]
        [--seeds 0 1] [--skip-recipe] [--skip-failure] [--threads 0] [--eval-n 5000]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import load_config
from genlab.errors import DataError
from genlab.runs.folder import read_run, read_stats

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "dcgan_mnist.yaml"
PYTORCH_EXAMPLE = [  # examples/dcgan/main.py defaults, on MNIST
    "data.image_size=64", "model.g_channels=64", "model.d_channels=64", "model.latent_dim=100",
    "objective.loss=nonsaturating", "objective.lr_d=2e-4", "objective.lr_g=2e-4", "objective.betas=[0.5, 0.999]",
    "objective.n_critic=1", "objective.ema_decay=0", "train.batch_size=128",
]
WARNING = re.compile(r"WARNING: iteration (\d+) \(([\d.]+) kimg\): (.*)")


def train_run(overrides: list[str], data_root: str, threads: int, seed: int) -> tuple[Path, float]:
    out_dir = tempfile.mkdtemp(prefix="genlab-bench-")
    config = load_config(RECIPE, [
        f"data.root={data_root}", f"train.seed={seed}", "train.progress_bar=false", "train.tensorboard=false",
        f"train.out_dir={out_dir}", f"train.threads={threads}", "train.checkpoint_every_kimg=0", *overrides,
    ])
    start = time.perf_counter()
    run_dir = genlab.train(config)
    return run_dir, time.perf_counter() - start


def summarise(run_dir: Path, wall: float) -> dict:
    records = read_stats(run_dir)
    warnings = [m.groups() for m in map(WARNING.search, (run_dir / "log.txt").read_text().splitlines()) if m]
    speeds = [r["images_per_sec"] for r in records[1:]] or [records[0]["images_per_sec"]]  # skip warm-up
    last = records[-1]
    return {
        "run_dir": str(run_dir),
        "kimg": last["kimg"],
        "iterations": last["iteration"],
        "threads": torch.get_num_threads(),
        "images_per_sec": sum(speeds) / len(speeds),
        "wall_seconds": wall,
        **{k: last[k] for k in ("D/D(x)", "D/D(G(z))", "D/loss", "G/loss", "G/grad_norm", "G/diversity")},
        "warnings": len(warnings),
        "first_warning": None if not warnings else {"iteration": int(warnings[0][0]), "kimg": float(warnings[0][1]), "text": warnings[0][2]},
    }


def sample_quality(run_dir: Path, n: int) -> dict:
    """FID (digit-classifier features, train split) and class coverage of the exported G."""
    from genlab.metrics.evaluate import evaluate
    from genlab.metrics.settings import EvalSettings

    _, config, _ = read_run(run_dir)
    try:
        results, _ = evaluate(genlab.load(run_dir), config, EvalSettings(metrics=("fid", "modes"), n=n), run_dir / "eval")
    except DataError as err:  # no trained classifier: say so instead of inventing a number
        return {"quality_skipped": str(err)}
    return {k: v for k, v in results.items() if k != "mode_histogram"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--kimg", type=float, default=None, help="recipe budget in thousands of real images (default: the config's)")
    parser.add_argument("--failure-iterations", type=int, default=100, help="iterations of the PyTorch example setup")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--eval-n", type=int, default=5000, help="samples for FID / coverage (0 skips them)")
    parser.add_argument("--skip-recipe", action="store_true")
    parser.add_argument("--skip-failure", action="store_true")
    args = parser.parse_args()

    for seed in args.seeds:
        if not args.skip_recipe:
            kimg = args.kimg or load_config(RECIPE).train.kimg
            run_dir, wall = train_run([f"train.kimg={kimg}", f"train.log_every_kimg={kimg / 15:.3f}"],
                                      args.data_root, args.threads, seed)
            result = {"setup": "genlab dcgan_mnist.yaml (28 px)", "seed": seed, **summarise(run_dir, wall)}
            if args.eval_n:
                result |= sample_quality(run_dir, args.eval_n)
            print(json.dumps(result))
            print(f"recipe seed {seed}: {result['images_per_sec']:.0f} img/s, D(x) {result['D/D(x)']:.2f}, "
                  f"D(G(z)) {result['D/D(G(z))']:.2f}, diversity {result['G/diversity']:.2f}, "
                  f"{result['warnings']} health warnings" + (f", FID {result['fid']:.2f}" if "fid" in result else ""))
        if not args.skip_failure:
            kimg = args.failure_iterations * 128 / 1000
            run_dir, wall = train_run(PYTORCH_EXAMPLE + [f"train.kimg={kimg}", "train.log_every_kimg=1.28",
                                                         "train.snapshot_every_kimg=0"],
                                      args.data_root, args.threads, seed)
            result = {"setup": "PyTorch DCGAN example defaults (64 px)", "seed": seed, **summarise(run_dir, wall)}
            print(json.dumps(result))
            first = result["first_warning"]
            print(f"example setup seed {seed}: {result['images_per_sec']:.0f} img/s (reference ~70), after "
                  f"{result['iterations']} iterations D(x) {result['D/D(x)']:.2f}, G loss {result['G/loss']:.1f}; "
                  + (f"flagged at iteration {first['iteration']}: {first['text']}" if first else "not flagged"))


if __name__ == "__main__":
    main()
