"""Matrix-multiply throughput of this CPU in fp32 and bf16: the floor under every training speed.

    python benchmarks/matmul_cpu.py [--threads 0]

Prints GFLOP/s for the MNIST VAE's first-layer shape (128 x 784 @ 784 x 400) and a large square product,
in fp32 on PyTorch's BLAS (MKL in the standard wheels) and on oneDNN (what train.cpu_linear=onednn
uses), and in bf16 (oneDNN). The machine's fp32 peak is the larger of the two fp32 figures.
"""

from __future__ import annotations

import argparse
import time

import torch

from genlab.training import cpu_linear

SHAPES = {"vae-fc1 128x784x400": (128, 784, 400), "square 1024": (1024, 1024, 1024)}


def gflops(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0, onednn: bool = False) -> float:
    """GFLOP/s of an [m, k] @ [k, n] product; ``onednn``: fp32 through oneDNN's linear instead of the BLAS."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    product = (lambda: cpu_linear.linear(a, b.t())) if onednn else (lambda: a @ b)
    for _ in range(10):
        product()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product()
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
        onednn = gflops(*shape, torch.float32, onednn=True) if cpu_linear.available() else float("nan")
        print(f"{name}: fp32 {fp32:.0f} GFLOP/s on the BLAS, {onednn:.0f} on oneDNN; bf16 {bf16:.0f} GFLOP/s "
              f"({bf16 / max(fp32, onednn):.1f}x the faster fp32)")


if __name__ == "__main__":
    main()
