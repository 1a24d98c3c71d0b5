"""Matrix-multiply throughput of this CPU in fp32 and bf16: the floor under every training speed.

    python benchmarks/matmul_cpu.py [--threads 0]

Prints GFLOP/s for the MNIST VAE's first-layer shape (128 x 784 @ 784 x 400) and a large square product.
"""

from __future__ import annotations

import argparse
import time

import torch

SHAPES = {"vae-fc1 128x784x400": (128, 784, 400), "square 1024": (1024, 1024, 1024)}


def gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(10):
        a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"threads: {torch.get_num_threads()}")
    for name, shape in SHAPES.items():
        fp32, bf16 = gflops(*shape, torch.float32), gflops(*shape, torch.bfloat16)
        print(f"{name}: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s ({bf16 / fp32:.1f}x)")


if __name__ == "__main__":
    main()
