"""The 784-400-20 VAE on MNIST: seconds per epoch, test loss, importance-weighted NLL.

Test loss follows the widely used PyTorch VAE example: summed binary cross-entropy over the
784 grey-level pixels plus the KL, with one reparameterised sample, in nats per image,
averaged over the 10,000 test images. Reference on the 2-core development machine: that
example takes about 6.0 s per epoch and reaches 105.6 after 10 epochs.

    python benchmarks/vae_mnist.py --data-root ../shared/data [--precision fp32 bf16] [--cpu-linear auto]
        [--epochs 10] [--k 1000]

``--cpu-linear blas onednn`` trains once per library of the fp32 Linear products (train.cpu_linear).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.images import to_model
from genlab.metrics.likelihood import elbo, evaluate_likelihood
from genlab.runs.folder import read_stats

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vae_mnist.yaml"


def run(precision: str, cpu_linear: str, epochs: int, data_root: str, k: int, threads: int) -> dict:
    out_dir = tempfile.mkdtemp(prefix="genlab-bench-")
    config = load_config(CONFIG, [
        f"data.root={data_root}", f"train.precision={precision}", f"train.cpu_linear={cpu_linear}",
        f"train.kimg={60 * epochs}",
        "train.log_every_kimg=60", "train.snapshot_every_kimg=0", "train.checkpoint_every_kimg=0",
        "train.progress_bar=false", "train.tensorboard=false", f"train.out_dir={out_dir}", f"train.threads={threads}",
    ])
    start = time.perf_counter()
    run_dir = genlab.train(config)
    wall = time.perf_counter() - start
    records = read_stats(run_dir)
    epoch_seconds = [60_000 / r["images_per_sec"] for r in records]
    vae = genlab.load(run_dir)
    test = to_model(load_dataset(config.data, "test")["image"])
    with torch.no_grad():
        test_loss = -elbo(vae, test, torch.Generator().manual_seed(0)).mean().item()
    result = {
        "precision": precision,
        "cpu_linear": cpu_linear,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "sec_per_epoch_mean": sum(epoch_seconds) / len(epoch_seconds),
        "sec_per_epoch_first": epoch_seconds[0],
        "sec_per_epoch_rest": sum(epoch_seconds[1:]) / max(1, len(epoch_seconds) - 1),
        "wall_seconds": wall,
        "test_loss_nats": test_loss,
    }
    if k:
        start = time.perf_counter()
        result.update(evaluate_likelihood(vae, test, k=k))
        result["iw_seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--cpu-linear", nargs="+", default=["auto"], choices=["auto", "blas", "onednn"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the IW NLL (0 skips it)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    for precision in args.precision:
        for cpu_linear in args.cpu_linear:
            result = run(precision, cpu_linear, args.epochs, args.data_root, args.k if precision == "fp32" else 0, args.threads)
            print(json.dumps(result))
            print(f"{precision}, cpu_linear={cpu_linear}: {result['sec_per_epoch_mean']:.2f} s/epoch (reference 6.0), "
                  f"test loss {result['test_loss_nats']:.1f} nats (reference 105.6)"
                  + (f", IW NLL (k={result['iw_k']}) {result['iw_nll_nats']:.2f} ± {result['iw_nll_se']:.2f}" if "iw_k" in result else ""))


if __name__ == "__main__":
    main()
