"""The stability claim (issue 26): do diffusion and flow matching train more reliably than a GAN?

Each recipe trains once per seed for the same wall-clock budget (``--minutes`` of loop time on one
thread each, ``--jobs`` runs at a time), then its export is scored on ``--n`` samples with one
evaluation seed: FID-MNIST in genlab's digit classifier's features. Per recipe: the FIDs' mean,
spread and range over seeds; how many runs diverged (stopped on NaN/Inf) or drew the health
monitor's warnings (a GAN's "D wins outright", "samples collapsed", ...); and how noisy the
training loss is (the standard deviation of its logged values' step-to-step changes over the second
half of training, each value a mean over 2,000 images, relative to its mean there). One table and one PNG (FID per seed, per recipe).

    PYTHONPATH=src python benchmarks/stability.py --data-root ../shared/data [--minutes 2] [--seeds 0 1 2 3 4]
        [--jobs 2] [--n 1000] [--configs ...] [--out runs/bench-stability] [--rows runs/bench-stability/rows.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

import genlab
from genlab.config import load_config
from genlab.errors import TrainingDiverged
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings
from genlab.plotting import draw_lines
from genlab.runs.folder import read_stats

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/fast_mnist_gan.yaml", "configs/fast_mnist_vae.yaml", "configs/ddpm_mnist.yaml",
           "configs/flow_mnist.yaml"]
LOSSES = ("G/loss", "vae/loss", "model/loss")  # the loss each family's export is trained on


def one_run(path: str, seed: int, args: argparse.Namespace) -> dict:
    """Train ``path`` with ``seed`` on one thread and score it (in a worker process)."""
    torch.set_num_threads(1)
    out = Path(args.out) / f"{Path(path).stem}-seed{seed}"
    config = load_config(ROOT / path, [
        f"data.root={args.data_root}", "train.threads=1", f"train.max_minutes={args.minutes}", "train.kimg=100000",
        f"train.out_dir={out}", f"train.seed={seed}", "train.progress_bar=false", "train.tensorboard=false",
        "train.snapshot_every_kimg=0", "train.checkpoint_every_kimg=0", "train.log_every_kimg=2",
    ])
    row = {"config": Path(path).stem, "seed": seed, "diverged": False}
    try:
        run_dir = genlab.train(config)
    except TrainingDiverged as err:
        return {**row, "diverged": True, "error": str(err)}
    log = (run_dir / "log.txt").read_text().splitlines()
    records = read_stats(run_dir)
    key = next(k for k in LOSSES if k in records[-1])
    late = [r[key] for r in records[len(records) // 2:]]
    steps = [b - a for a, b in zip(late, late[1:], strict=False)]
    settings = EvalSettings(metrics=("fid",), n=args.n, features="mnist", seed=0, classifier=args.classifier)
    results, _ = evaluate(genlab.load(run_dir), config, settings, run_dir / "eval" / f"stability-n{args.n}")
    return {**row, "run": str(run_dir), "kimg": records[-1]["kimg"], "fid": results["fid"],
            "warnings": sum("WARNING" in line for line in log),
            "loss_noise": statistics.pstdev(steps) / abs(statistics.fmean(late)) if len(steps) > 1 else 0.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--minutes", type=float, default=2.0, help="loop time per run, on one thread")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--n", type=int, default=1000, help="samples per FID")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--classifier", help="classifier run (default: the newest from genlab train-classifier)")
    p.add_argument("--out", default="runs/bench-stability")
    p.add_argument("--rows", type=Path, help="print the table and figure of an earlier run's rows.json instead")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.rows:
        rows = json.loads(args.rows.read_text())
    else:
        jobs = [(path, seed) for path in args.configs for seed in args.seeds]
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(one_run, *zip(*jobs, strict=True), [args] * len(jobs)))
        (Path(args.out) / "rows.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{args.minutes:g} min of loop time per run on one thread ({args.jobs} runs at a time); "
          f"FID-MNIST on {args.n} samples, eval seed 0")
    print("| recipe | seeds | kimg (min-max) | FID mean ± sd | FID min-max | diverged | runs with health warnings | loss noise |")
    print("|---|---|---|---|---|---|---|---|")
    panel = {}
    for i, path in enumerate(args.configs):
        name = Path(path).stem
        group = [r for r in rows if r["config"] == name]
        done = [r for r in group if not r["diverged"]]
        fids = [r["fid"] for r in done]
        spread = f"{statistics.fmean(fids):.1f} ± {statistics.stdev(fids):.1f}" if len(fids) > 1 else "-"
        span = f"{min(fids):.1f}-{max(fids):.1f}" if fids else "-"
        kimg = f"{min(r['kimg'] for r in done):.0f}-{max(r['kimg'] for r in done):.0f}" if done else "-"
        print(f"| {name} | {len(group)} | {kimg} | {spread} | {span} | "
              f"{len(group) - len(done)} | {sum(r['warnings'] > 0 for r in done)} | "
              f"{statistics.fmean(r['loss_noise'] for r in done):.3f} |")
        if fids:
            panel[name] = ([i + 0.1 * (j - 2) for j in range(len(fids))], fids)
    draw_lines({f"FID-MNIST per seed ({args.n} samples)": panel}, "recipe (" + ", ".join(
        f"{i}: {Path(c).stem}" for i, c in enumerate(args.configs)) + ")", Path(args.out) / "stability.png",
        legend="left")
    print(f"rows and figure in {args.out}")


if __name__ == "__main__":
    main()
