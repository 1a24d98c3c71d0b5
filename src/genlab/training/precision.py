"""``train.precision=auto``: time real training iterations in fp32 and in bf16 autocast on this
machine, and train in bf16 only where it is measured to be faster.

Whether bf16 pays depends on the CPU: on an AMD EPYC with AVX-512 BF16 a VAE step is 1.7x
faster, on an Intel Xeon of the same class it was 1.45x slower (docs/benchmarks.md). A fixed
default is a slowdown somewhere, so the loop measures. The timed iterations are the run's own
(same model, batch, phases); the loop undoes them afterwards, so the run starts from the same
weights, optimiser state, data position and RNGs as without the probe.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Literal

from genlab.errors import TrainingDiverged

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")
MARGIN = 0.9  # bf16 must take at most this fraction of fp32's time: reduced precision must earn its keep
BLOCK_SECONDS = 0.25  # target length of one timed block
ROUNDS = 3  # timed blocks per precision, alternating, so a change of load hits both
MAX_BLOCK_ITERATIONS = 100


def time_precisions(iterate: Callable[[Precision], None],
                    agree: Callable[[dict[Precision, int]], dict[Precision, int]] = lambda counts: counts,
                    ) -> dict[Precision, float]:
    """Median seconds per training iteration for each precision; ``inf`` for one that diverged.

    ``iterate(precision)`` runs one training iteration. One warm-up iteration each, then
    ``ROUNDS`` alternating blocks of as many iterations as fill ``BLOCK_SECONDS``; ``agree``
    makes every process of a distributed run use the same block lengths (process 0's).
    """
    seconds: dict[Precision, list[float]] = {p: [] for p in PRECISIONS}
    failed: set[Precision] = set()

    def block(precision: Precision, iterations: int) -> float:
        start = time.perf_counter()
        for _ in range(iterations):
            iterate(precision)
        return (time.perf_counter() - start) / iterations

    warm = {}
    for precision in PRECISIONS:
        try:
            warm[precision] = block(precision, 1)
        except TrainingDiverged:
            failed.add(precision)
    if "fp32" in failed:  # nothing to compare against: the run itself will report the divergence
        return {"fp32": math.inf, "bf16": math.inf}
    per_block = agree({p: min(MAX_BLOCK_ITERATIONS, max(1, math.ceil(BLOCK_SECONDS / max(warm[p], 1e-9)))) for p in warm})
    for _ in range(ROUNDS):
        for precision in PRECISIONS:
            if precision in failed:
                continue
            try:
                seconds[precision].append(block(precision, per_block[precision]))
            except TrainingDiverged:
                failed.add(precision)
    return {p: math.inf if p in failed else statistics.median(seconds[p]) for p in PRECISIONS}


def choose(seconds: dict[Precision, float]) -> Precision:
    """bf16 when it takes at most ``MARGIN`` of fp32's time per iteration, else fp32."""
    return "bf16" if seconds["bf16"] <= MARGIN * seconds["fp32"] else "fp32"


def describe(seconds: dict[Precision, float], chosen: Precision) -> str:
    """One log line: both timings and the choice."""
    shown = ", ".join(f"{p} {s * 1000:.1f} ms" if math.isfinite(s) else f"{p} diverged" for p, s in seconds.items())
    return f"train.precision=auto: {shown} per iteration on this machine; training in {chosen}"
