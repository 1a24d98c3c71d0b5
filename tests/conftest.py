"""Shared fixtures. Real MNIST comes read-only from ../shared/data (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Directory holding MNIST/raw/*.gz exactly as the official files ship."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST expected under {SHARED_DATA}; the test suite needs ../shared/data")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two cores: one thread per test process keeps timings steady and runs reproducible.
    torch.set_num_threads(1)
    yield
