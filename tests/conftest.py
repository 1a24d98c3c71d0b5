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


@pytest.fixture
def run_phase():
    """``run(step, phase, batch) -> (loss output, {module name: got a nonzero gradient})``: one phase's
    loss and backward pass as the loop runs them, with only the phase's modules trainable."""
    from genlab.training.loop import _training_only

    def run(step, phase, batch):
        for p in (p for m in step.modules.values() for p in m.parameters()):
            p.grad = None
        with _training_only(step, phase, wrapped={}):
            out = phase.loss(batch)
            out.loss.backward()
        reached = {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
                   for name, m in step.modules.items()}
        return out, reached

    return run


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two cores: one thread per test process keeps timings steady and runs reproducible.
    torch.set_num_threads(1)
    yield
