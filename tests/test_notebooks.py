"""The tutorials (notebooks/, one per chapter of the material genlab teaches) run top to bottom, each from the
zoo and a little training, so none goes stale; each is timed against its budget of about a minute."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
BUDGET_S = 180  # a minute on a laptop CPU, with room for a slower CI machine and AVX2-only kernels


def test_there_is_a_tutorial_per_chapter():
    chapters = ("vae", "gan-theory", "dcgan-latent", "conditional", "image-to-image", "stylegan-progan",
                "text-to-image", "diffusion")
    assert [p.stem.split("-", 1)[1] for p in NOTEBOOKS] == list(chapters)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_tutorial_runs_top_to_bottom(path, monkeypatch, mnist_root, tmp_path):
    monkeypatch.setenv("GENLAB_DATA", str(mnist_root))
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(notebook, timeout=BUDGET_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # run from notebooks/
    client.execute()
    assert time.perf_counter() - start < BUDGET_S
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
