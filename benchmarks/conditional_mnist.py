"""Conditional MNIST figures: each conditional recipe trained, then scored on 10,000 samples
of balanced classes with conditional accuracy, intra-class FID, the Classification Accuracy
Score and the Parzen window (2014 protocol; Mirza & Osindero report 132 +- 1.8 for their cGAN).

    PYTHONPATH=src python benchmarks/conditional_mnist.py --data-root ../shared/data \
        [--configs configs/cvae_mnist.yaml ...] [--kimg K] [--n 10000] [--threads 2]

Needs the digit classifier (`genlab train-classifier`). Prints one table row per recipe
with its training time; every eval card lands in RUN/eval/.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from genlab.api import load, train
from genlab.config import load_config
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings

CONFIGS = ("configs/cvae_mnist.yaml", "configs/cgan_mnist.yaml", "configs/sngan_projection_mnist.yaml")
METRICS = ("cond_acc", "intra_fid", "cas", "parzen", "fid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--kimg", type=float, help="override each recipe's training length")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-conditional")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| recipe | kimg | train s | cond. accuracy | intra-FID | CAS | Parzen (nats) | FID-MNIST |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.configs:
        overrides = [f"data.root={args.data_root}", f"train.out_dir={args.out}", "train.progress_bar=false",
                     f"train.threads={args.threads}"] + ([f"train.kimg={args.kimg}"] if args.kimg else [])
        config = load_config(path, overrides)
        start = time.perf_counter()
        run_dir = train(config)
        seconds = time.perf_counter() - start
        settings = EvalSettings(metrics=METRICS, n=args.n, features="mnist")
        r, _ = evaluate(load(run_dir), config, settings, Path(run_dir) / "eval" / f"conditional-n{args.n}", run=str(run_dir))
        print(f"| {Path(path).stem} | {config.train.kimg:g} | {seconds:.0f} | {r['conditional_accuracy']:.3f} | "
              f"{r['intra_fid']:.1f} | {r['cas']:.3f} | {r['parzen_ll']:.1f} +- {r['parzen_ll_se']:.1f} | {r['fid']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
