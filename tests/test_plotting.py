"""The PIL line plots benchmarks draw their figures with."""

from __future__ import annotations

import numpy as np
from PIL import Image

from genlab.plotting import BLUE, PALETTE, RED, draw_labelled_rows, draw_lines


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


def test_labelled_rows_put_each_row_of_images_right_of_its_label_at_the_scale():
    rows = [np.full((4, 6, 3), (10 * i, 200, 30), dtype=np.uint8) for i in range(3)]
    image = np.asarray(draw_labelled_rows(["a big red square", "b", "c"], rows, scale=2))
    assert image.shape[0] == 3 * 8 and image.shape[1] > 12
    left = image.shape[1] - 12  # the rows are right-aligned after the widest label
    for i in range(3):
        assert (image[8 * i : 8 * (i + 1), left:] == (10 * i, 200, 30)).all()
    assert (image[:, :left] != 255).any()  # some label ink
