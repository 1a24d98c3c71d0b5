"""The figure of the 1-D GAN theory experiment: Figure 1 of Goodfellow et al. (2014) from a
:func:`~genlab.experiments.theory.run_theory` result, plus D vs D* and V(D, G) against the theorem.

Drawn with the plain PIL panels of :mod:`genlab.plotting`, which know nothing of experiments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genlab.experiments.theory import Snapshot, TheoryResult
from genlab.metrics.theory import LOG4
from genlab.plotting import BLACK, BLUE, GREEN, GREY, RED, Panel

PANEL_W, PANEL_H, MARGIN_L, MARGIN_T, GAP_X, GAP_Y = 420, 300, 60, 50, 70, 90


def draw_theory_figure(result: TheoryResult, path: str | Path) -> Path:
    """Figure 1 of Goodfellow et al. (2014) from a theory run, plus D vs D* and V(D, G) against the theorem.

    ``result`` comes from :func:`genlab.experiments.theory.run_theory`; writes a PNG at ``path``.
    """
    width = MARGIN_L + 3 * (PANEL_W + GAP_X)
    height = MARGIN_T + 2 * (PANEL_H + GAP_Y)
    image = Image.new("RGB", (width, height), "white")
    corners = [(MARGIN_L + c * (PANEL_W + GAP_X), MARGIN_T + r * (PANEL_H + GAP_Y)) for r in range(2) for c in range(3)]
    boxes = [(u, v, u + PANEL_W, v + PANEL_H) for u, v in corners]
    xlim = (float(result.panels[0].x[0]), float(result.panels[0].x[-1]))
    for box, snap in zip(boxes, result.panels[:4], strict=False):
        _draw_game(Panel(image, box, xlim, (-0.5, 1.05), f"after {snap.step} G updates"), snap)
    _draw_converged(
        Panel(
            image,
            boxes[4],
            (float(result.converged.x[0]), float(result.converged.x[-1])),
            (-0.05, 1.05),
            f"G frozen, D trained: max |D - D*| = {result.numbers['max_abs_d_error']:.3f}",
        ),
        result.converged,
        result.bulk,
    )
    _draw_trajectory(image, boxes[5], result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _draw_game(panel: Panel, snap: Snapshot) -> None:
    """p_data (black dots), p_g (green), D (blue dashes), and the z -> x map below, as in the paper."""
    panel.axes(xlabel="x", yticks=[0.0, 0.5, 1.0])
    panel.points(snap.x[::8], snap.p_data[::8], BLACK, radius=1.5)
    panel.line(snap.x, snap.p_g, GREEN)
    panel.line(snap.x, snap.d, BLUE, dash=6)
    lo, hi = panel.xlim
    panel.line(np.array([lo, hi]), np.array([-0.12, -0.12]), BLACK, width=1)  # x
    panel.line(np.array([lo, hi]), np.array([-0.42, -0.42]), BLACK, width=1)  # z, by quantile
    for q, gz in snap.z_to_x:
        panel.line(np.array([lo + q * (hi - lo), gz]), np.array([-0.42, -0.12]), GREY, width=1)
    panel.legend([("p_data", BLACK, 0), ("p_g", GREEN, 0), ("D(x)", BLUE, 1)])


def _draw_converged(panel: Panel, snap: Snapshot, bulk: np.ndarray) -> None:
    panel.axes(xlabel="x", yticks=[0.0, 0.5, 1.0])
    inside = snap.x[bulk]
    u, _ = panel.to_pixels(np.array([inside.min(), inside.max()]), np.zeros(2))
    bottom = panel.box[3]
    panel.draw.rectangle([u[0], bottom - 6, u[1], bottom - 2], fill=(215, 215, 215))  # the compared region
    panel.points(snap.x[::8], snap.p_data[::8], BLACK, radius=1.5)
    panel.line(snap.x, snap.p_g, GREEN)
    panel.line(snap.x, snap.d_star, RED, width=3)
    panel.line(snap.x, snap.d, BLUE, dash=6)
    panel.legend([("p_data", BLACK, 0), ("p_g", GREEN, 0), ("D*(x)", RED, 0), ("D(x)", BLUE, 1)])


def _draw_trajectory(image: Image.Image, box: tuple[int, int, int, int], result: TheoryResult) -> None:
    steps = np.array([r["step"] for r in result.trajectory], dtype=float)
    theorem = np.array([r["theorem_value"] for r in result.trajectory])
    value = np.array([r["value_integral"] for r in result.trajectory])
    lo = min(-LOG4, float(value.min()), float(theorem.min()))
    hi = max(float(theorem.max()), float(value.max()))
    pad = 0.05 * (hi - lo) + 1e-3
    panel = Panel(image, box, (0.0, float(steps[-1])), (lo - pad, hi + pad), "V(D, G) -> -log 4 as p_g -> p_data")
    panel.axes(xlabel="G updates", ylabel="nats")
    panel.line(np.array([0.0, steps[-1]]), np.array([-LOG4] * 2), GREY, width=1, dash=4)
    panel.line(steps, theorem, GREEN)
    panel.points(steps, value, BLUE, radius=3)
    panel.legend([("-log 4 + 2 JSD", GREEN, 0), ("V(D, G)", BLUE, 0), ("-log 4", GREY, 1)])
