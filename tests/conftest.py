"""Shared fixtures. Real MNIST comes read-only from ../shared/data (see its README)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import EXAMPLE_FILES
from genlab.data import standard
from genlab.data.tensors import save_tensors

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_mnist() -> Path:
    """The data root holding MNIST/raw/*.gz exactly as the official files ship."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST expected under {SHARED_DATA}; the test suite needs ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Directory holding MNIST/raw/*.gz exactly as the official files ship."""
    return shared_mnist()


# ----------------------------------------------------------------------------- files of example configs


def _fashion_mnist(folder: Path) -> Path:
    """A data root whose FashionMNIST/raw holds the real MNIST files: the same format and sizes, read by the same code."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for file in (shared_mnist() / "MNIST" / "raw").iterdir():
        (raw / file.name).symlink_to(file)
    return folder


def _cifar10(folder: Path) -> Path:
    """The binary release's files at their full sizes (5 x 10000 train, 10000 test records), random records
    first and zeros after them (left as holes in the files, so nothing much is written)."""
    source = standard.SOURCES["cifar10"]
    batches = folder / source.folder
    batches.mkdir()
    rng = np.random.default_rng(0)
    record = 1 + 3 * 32 * 32
    for split, files in source.split_files.items():
        per_file = source.split_sizes[split] // len(files)
        for file in files:
            with open(batches / file, "wb") as out:
                labels = rng.integers(0, 10, size=(100, 1), dtype=np.uint8)
                out.write(np.concatenate([labels, rng.integers(0, 256, (100, record - 1), dtype=np.uint8)], 1).tobytes())
                out.truncate(per_file * record)
    return folder


def _image_folder(folder: Path) -> Path:
    """Two class folders of 8 small PNGs each, of random sizes and colours."""
    rng = np.random.default_rng(1)
    for label in ("cats", "dogs"):
        (folder / label).mkdir()
        for i in range(8):
            size = tuple(int(s) for s in rng.integers(12, 40, size=2))
            Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3))).save(folder / label / f"{i}.png")
    return folder


def _paired_folder(folder: Path) -> Path:
    """train/ and test/ of A|B pictures side by side (width 2W), 4 each."""
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        (folder / split).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f"{i}.png")
    return folder


def _trajectory_folder(folder: Path) -> Path:
    """train/ and test/ of one ETH/UCY file each: two simulated crossings of 3 people, 10 frames each."""
    from genlab.data.crowds import CrowdsConfig, simulate
    from genlab.data.trajectory_folder import write_tracks

    scenes, _ = simulate(CrowdsConfig(name="crowds", agents=3, observed=5, predicted=5), np.random.default_rng(4), 2)
    for split, scene in zip(("train", "test"), scenes, strict=True):
        (folder / split).mkdir()
        write_tracks(folder / split / "crossing.txt", scene)
    return folder


def _tensors(folder: Path) -> Path:
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (16, 3, 8, 8), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 3, (16,), generator=generator)
    return save_tensors(folder / "samples.safetensors", images, labels, ("cat", "dog", "bird"))


# Data set name -> what fills EXAMPLE_FILES in its example config: the real MNIST where that is what it
# reads, else a function writing small files into an empty folder, returning the path to configure.
EXAMPLE_FILE_WRITERS: dict[str, Callable[[Path], Path]] = {
    "mnist": lambda folder: shared_mnist(),
    "stacked_mnist": lambda folder: shared_mnist(),
    "mnist_m": lambda folder: shared_mnist(),
    "fashion_mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "image_folder": _image_folder,
    "paired_folder": _paired_folder,
    "tensors": _tensors,
    "trajectory_folder": _trajectory_folder,
}


@pytest.fixture(scope="session")
def example_files(tmp_path_factory) -> Callable[[dict], dict]:
    """``fill(section) -> section``: a copy of an example config section (``genlab.data.example_configs``, an
    objective's ``resume_examples``) with each EXAMPLE_FILES value replaced by the files of the data set whose
    section holds it (:data:`EXAMPLE_FILE_WRITERS`), written once per session."""
    written: dict[str, str] = {}

    def files_of(name: str) -> str:
        if name not in written:
            if name not in EXAMPLE_FILE_WRITERS:
                pytest.fail(f"data set {name!r}'s example reads files (EXAMPLE_FILES), but tests/conftest.py has "
                            "no writer for them: add one to EXAMPLE_FILE_WRITERS")
            written[name] = str(EXAMPLE_FILE_WRITERS[name](tmp_path_factory.mktemp(name)))
        return written[name]

    def fill(node: Any, name: str = "") -> Any:
        if isinstance(node, dict):
            name = node.get("name", name)
            return {key: files_of(name) if value == EXAMPLE_FILES else fill(value, name) for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(fill(value, name) for value in node)
        return node

    return fill


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
