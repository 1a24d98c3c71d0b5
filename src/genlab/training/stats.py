"""Running averages of step statistics, and where they are written.

A run folder logs three ways: ``log.txt`` (human messages, warnings), ``stats.jsonl``
(one JSON object per logging interval), and TensorBoard scalars under ``tensorboard/``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor


class Meter:
    """Sums scalar stats as tensors (no device sync per step) and averages them on demand."""

    def __init__(self) -> None:
        self._sums: dict[str, Tensor | float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def add(self, prefix: str, stats: dict[str, Tensor | float]) -> None:
        for name, value in stats.items():
            key = f"{prefix}/{name}"
            self._sums[key] = self._sums[key] + (value.detach().float() if isinstance(value, Tensor) else float(value))
            self._counts[key] += 1

    def averages(self) -> dict[str, float]:
        """The mean of each stat since the last call, then reset."""
        means = {k: float(v) / self._counts[k] for k, v in self._sums.items()}
        self._sums.clear()
        self._counts.clear()
        return means


class RunLogger:
    """Writes messages and stats of one run; a no-op off rank 0."""

    def __init__(self, run_dir: Path, tensorboard: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self._writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: it is slow to load

            self._writer = SummaryWriter(str(run_dir / "tensorboard"))

    def message(self, text: str, echo: bool = True) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / "log.txt", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        if echo:
            from tqdm import tqdm

            tqdm.write(text)

    def warning(self, text: str, images_seen: int) -> None:
        self.message(f"WARNING: {text}")
        if self._writer is not None:
            self._writer.add_text("health", text, images_seen)

    def stats(self, record: dict[str, float], images_seen: int) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in record.items():
                if key not in ("kimg", "iteration"):
                    self._writer.add_scalar(key, value, images_seen)

    def image(self, tag: str, grid_uint8: torch.Tensor, images_seen: int) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, grid_uint8, images_seen)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
