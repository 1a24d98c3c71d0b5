"""The PIL line plots benchmarks draw their figures with."""

from __future__ import annotations

import numpy as np
from PIL import Image

from genlab.plotting import BLUE, PALETTE, RED, draw_lines


def _has(image: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((image == np.array(colour, dtype=np.uint8)).all(axis=-1).any())


def test_draw_lines_gives_each_label_one_colour_in_every_panel(tmp_path):
    panels = {
        "accuracy": {"recipe": ([0, 10, 20], [0.1, 0.5, 0.9]), "control": ([0, 10, 20], [0.1, 0.1, 0.2])},
        "FID": {"recipe": ([20], [30.0])},  # one point: the x range must not collapse
    }
    path = draw_lines(panels, "training kimg", tmp_path / "curves.png", ylims={"accuracy": (0.0, 1.0)})
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (380, 80 + 520 * 2, 3)
    left, right = image[:, : 80 + 520], image[:, 80 + 520 :]
    assert _has(left, BLUE) and _has(left, RED)  # PALETTE's first two, in order of first appearance
    assert _has(right, BLUE) and not _has(right, RED)
    assert PALETTE[:2] == (BLUE, RED)
