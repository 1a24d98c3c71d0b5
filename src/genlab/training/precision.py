"""``train.precision=auto``: time real training iterations in fp32 and in bf16 autocast on this
machine, and train in bf16 only where it is measured to be faster.

Whether bf16 pays depends on the CPU: on an AMD EPYC with AVX-512 BF16 a VAE step is 1.7x
faster, on an Intel Xeon of the same class it was 1.45x slower (docs/benchmarks.md). A fixed
default is a slowdown somewhere, so the loop measures. The timed iterations are the run's own
(same model, batch, phases); the loop undoes them afterwards, so the run starts from the same
weights, optimiser state, data position and RNGs as without the probe.

A device without bf16 kernels of its own is not timed in bf16 at all: on a CPU with AVX2 only,
PyTorch's bf16 convolutions fall back to reference loops (a DCGAN-28 step took 2,295 ms against
135 ms in fp32 on an AVX2 EPYC; on an AVX-512 EPYC run as an AVX2 one, ONEDNN_MAX_CPU_ISA=AVX2,
a small conv D's forward and backward took 214 ms in bf16 against 17 ms in fp32), so the timing
would cost the run seconds to learn the obvious.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Literal

import torch

from genlab.errors import TrainingDiverged

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
MARGIN = 0.9  # bf16 must take at most this fraction of fp32's time: reduced precision must earn its keep
BLOCK_SECONDS = 0.25  # target length of one timed block
ROUNDS = 3  # timed blocks per precision, alternating, so a change of load hits both
MAX_BLOCK_ITERATIONS = 100


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 on kernels of its own rather than on slow fallbacks.

    On the CPU that is oneDNN's bf16 support (AVX-512 BF16, AMX, or AVX-512 with emulation that
    oneDNN accepts); PyTorch takes its bf16 convolutions and matmuls to oneDNN only when it holds.
    """
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return True


def candidates(device: torch.device) -> tuple[Precision, ...]:
    """The precisions worth timing on ``device``: fp32, and bf16 where it has kernels of its own."""
    return PRECISIONS if native_bf16(device) else ("fp32",)


def time_precisions(
    iterate: Callable[[Precision], object],
    agree: Callable[[dict[Precision, int]], dict[Precision, int]] = lambda counts: counts,
    precisions: tuple[Precision, ...] = PRECISIONS,
) -> dict[Precision, float]:
    """Median seconds per training iteration for each of ``precisions``; ``inf`` for one that diverged.

    ``iterate(precision)`` runs one training iteration. One warm-up iteration each, then
    ``ROUNDS`` alternating blocks of as many iterations as fill ``BLOCK_SECONDS``; ``agree``
    makes every process of a distributed run use the same block lengths (process 0's).
    A precision left out of ``precisions`` is left out of the result.
    """
    seconds: dict[Precision, list[float]] = {p: [] for p in precisions}
    failed: set[Precision] = set()

    def block(precision: Precision, iterations: int) -> float:
        start = time.perf_counter()
        for _ in range(iterations):
            iterate(precision)
        return (time.perf_counter() - start) / iterations

    warm = {}
    for precision in precisions:
        try:
            warm[precision] = block(precision, 1)
        except TrainingDiverged:
            failed.add(precision)
    if "fp32" in failed:  # nothing to compare against: the run itself will report the divergence
        return {p: math.inf for p in precisions}
    per_block = agree(
        {p: min(MAX_BLOCK_ITERATIONS, max(1, math.ceil(BLOCK_SECONDS / max(warm[p], 1e-9)))) for p in warm}
    )
    for _ in range(ROUNDS):
        for precision in precisions:
            if precision in failed:
                continue
            try:
                seconds[precision].append(block(precision, per_block[precision]))
            except TrainingDiverged:
                failed.add(precision)
    return {p: math.inf if p in failed else statistics.median(seconds[p]) for p in precisions}


def choose(seconds: dict[Precision, float]) -> Precision:
    """bf16 when it was timed and took at most ``MARGIN`` of fp32's time per iteration, else fp32."""
    return "bf16" if seconds.get("bf16", math.inf) <= MARGIN * seconds["fp32"] else "fp32"


def describe(seconds: dict[Precision, float], chosen: Precision) -> str:
    """One log line: the timings, what was not timed and why, and the choice."""
    shown = ", ".join(f"{p} {s * 1000:.1f} ms" if math.isfinite(s) else f"{p} diverged" for p, s in seconds.items())
    untimed = "".join(f"; {p} not timed: no native {p} kernels on this device" for p in PRECISIONS if p not in seconds)
    return f"train.precision=auto: {shown} per iteration on this machine{untimed}; training in {chosen}"
