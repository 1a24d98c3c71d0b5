"""Minimal line and scatter plots drawn with PIL, for figures without a plotting library.

A :class:`Panel` maps data coordinates into a pixel box of a shared ``PIL.Image`` and
draws curves, points, axes and a legend. Colours are RGB tuples. Also the figure of the
1-D GAN theory experiment (:func:`draw_theory_figure`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from genlab.metrics.theory import LOG4

if TYPE_CHECKING:
    from genlab.experiments.theory import Snapshot, TheoryResult

Color = tuple[int, int, int]
BLACK: Color = (0, 0, 0)
GREY: Color = (150, 150, 150)
GREEN, BLUE, RED = (20, 140, 60), (30, 80, 200), (200, 40, 40)


def font(size: int = 14) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only its fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, count: int = 5) -> np.ndarray:
    """About ``count`` round tick values (steps of 1, 2 or 5 x 10^k) inside [lo, hi]."""
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** np.floor(np.log10(raw))
    step = magnitude * min((1, 2, 5, 10), key=lambda m: abs(np.log(m * magnitude / raw)))
    ticks = np.arange(np.ceil(lo / step), np.floor(hi / step) + 1) * step
    return ticks + 0.0  # no "-0" labels


class Panel:
    """One plot: a pixel ``box`` (left, top, right, bottom) showing ``xlim`` x ``ylim``."""

    def __init__(
        self, image: Image.Image, box: tuple[int, int, int, int], xlim: tuple[float, float],
        ylim: tuple[float, float], title: str = "",
    ) -> None:
        self.draw = ImageDraw.Draw(image)
        self.box, self.xlim, self.ylim, self.title = box, xlim, ylim, title
        self.font = font(14)

    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        left, top, right, bottom = self.box
        u = left + (np.asarray(x, dtype=float) - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)
        v = bottom - (np.asarray(y, dtype=float) - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (bottom - top)
        return u, v

    def line(self, x: np.ndarray, y: np.ndarray, color: Color, width: int = 2, dash: int = 0) -> None:
        """A polyline through (x, y); ``dash`` > 0 draws dashes of that many pixels. Clipped to the box."""
        u, v = self.to_pixels(x, np.clip(y, *self.ylim))
        inside = (np.asarray(x) >= self.xlim[0]) & (np.asarray(x) <= self.xlim[1])
        u, v = u[inside], v[inside]
        if dash <= 0:
            self.draw.line(list(zip(u, v)), fill=color, width=width, joint="curve")
            return
        # Dashes follow the curve's arc length, so they stay even on steep parts.
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(u), np.diff(v)))])
        on = (arc // dash) % 2 == 0
        for i in range(len(u) - 1):
            if on[i]:
                self.draw.line([(u[i], v[i]), (u[i + 1], v[i + 1])], fill=color, width=width)

    def points(self, x: np.ndarray, y: np.ndarray, color: Color, radius: float = 1.5, filled: bool = True) -> None:
        """Dots of ``radius`` pixels at (x, y), or rings when not ``filled``; those outside the box are skipped."""
        u, v = self.to_pixels(x, y)
        left, top, right, bottom = self.box
        keep = (u >= left) & (u <= right) & (v >= top) & (v <= bottom)
        for a, b in zip(u[keep], v[keep]):
            box = [a - radius, b - radius, a + radius, b + radius]
            if filled:
                self.draw.ellipse(box, fill=color)
            else:
                self.draw.ellipse(box, outline=color, width=1)

    def axes(self, xlabel: str = "", ylabel: str = "", xticks: Sequence[float] | None = None,
             yticks: Sequence[float] | None = None) -> None:
        """Frame, ticks with labels, axis labels and the title."""
        left, top, right, bottom = self.box
        self.draw.rectangle(self.box, outline=BLACK, width=1)
        for t in nice_ticks(*self.xlim) if xticks is None else xticks:
            u, _ = self.to_pixels(np.array([t]), np.array([self.ylim[0]]))
            self.draw.line([(u[0], bottom), (u[0], bottom + 4)], fill=BLACK)
            self.draw.text((u[0], bottom + 6), f"{t:g}", fill=BLACK, font=self.font, anchor="mt")
        for t in nice_ticks(*self.ylim) if yticks is None else yticks:
            _, v = self.to_pixels(np.array([self.xlim[0]]), np.array([t]))
            self.draw.line([(left - 4, v[0]), (left, v[0])], fill=BLACK)
            self.draw.text((left - 6, v[0]), f"{t:g}", fill=BLACK, font=self.font, anchor="rm")
        if xlabel:
            self.draw.text(((left + right) / 2, bottom + 24), xlabel, fill=BLACK, font=self.font, anchor="mt")
        if ylabel:
            self.draw.text((left, top - 4), ylabel, fill=BLACK, font=self.font, anchor="ld")
        if self.title:
            self.draw.text(((left + right) / 2, top - 22), self.title, fill=BLACK, font=self.font, anchor="md")

    def legend(self, items: Sequence[tuple[str, Color, int]], corner: str = "right") -> None:
        """Entries (label, colour, dash) stacked in the top ``corner`` ("left" or "right") of the box."""
        left, top, right, _ = self.box
        x0 = left + 8 if corner == "left" else right - 150
        # A white card, so that curves passing under the legend do not cross its text.
        self.draw.rectangle([x0 - 4, top + 2, x0 + 142, top + 18 * len(items) + 2], fill=(255, 255, 255), outline=GREY)
        for i, (label, color, dash) in enumerate(items):
            y = top + 10 + 18 * i
            xs = np.linspace(x0, x0 + 28, 15)
            if dash:
                for a, b in zip(xs[::2][:-1], xs[1::2]):
                    self.draw.line([(a, y), (b, y)], fill=color, width=2)
            else:
                self.draw.line([(x0, y), (x0 + 28, y)], fill=color, width=2)
            self.draw.text((x0 + 34, y), label, fill=BLACK, font=self.font, anchor="lm")


def draw_curves(x_labels: Sequence[str], series: dict[str, Sequence[float]], xlabel: str, path: str | Path) -> Path:
    """One small panel per series, each value over the same categorical x axis (e.g. truncation levels)."""
    width, height = 60 + 320 * len(series), 300
    image = Image.new("RGB", (width, height), (255, 255, 255))
    xs = np.arange(len(x_labels), dtype=float)
    for i, (name, values) in enumerate(series.items()):
        lo, hi = float(min(values)), float(max(values))
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
        panel = Panel(image, (60 + 320 * i, 50, 320 * (i + 1) - 10, height - 60), (-0.5, len(x_labels) - 0.5),
                      (lo - pad, hi + pad), title=name)
        panel.line(xs, np.asarray(values, dtype=float), BLUE)
        panel.points(xs, np.asarray(values, dtype=float), BLUE, radius=3)
        panel.axes(xlabel=xlabel, xticks=[])
        for x, label in zip(xs, x_labels):
            u, _ = panel.to_pixels(np.array([x]), np.array([panel.ylim[0]]))
            panel.draw.text((u[0], panel.box[3] + 6), label, fill=BLACK, font=panel.font, anchor="mt")
    path = Path(path)
    image.save(path)
    return path


# ----------------------------------------------------------------------------- the 1-D GAN theory figure

PANEL_W, PANEL_H, MARGIN_L, MARGIN_T, GAP_X, GAP_Y = 420, 300, 60, 50, 70, 90


def draw_theory_figure(result: TheoryResult, path: str | Path) -> Path:
    """Figure 1 of Goodfellow et al. (2014) from a theory run, plus D vs D* and V(D, G) against the theorem.

    ``result`` comes from :func:`genlab.experiments.theory.run_theory`; writes a PNG at ``path``.
    """
    width = MARGIN_L + 3 * (PANEL_W + GAP_X)
    height = MARGIN_T + 2 * (PANEL_H + GAP_Y)
    image = Image.new("RGB", (width, height), "white")
    boxes = [(MARGIN_L + c * (PANEL_W + GAP_X), MARGIN_T + r * (PANEL_H + GAP_Y)) for r in range(2) for c in range(3)]
    boxes = [(u, v, u + PANEL_W, v + PANEL_H) for u, v in boxes]
    xlim = (float(result.panels[0].x[0]), float(result.panels[0].x[-1]))
    for box, snap in zip(boxes, result.panels[:4]):
        _draw_game(Panel(image, box, xlim, (-0.5, 1.05), f"after {snap.step} G updates"), snap)
    _draw_converged(Panel(image, boxes[4], (float(result.converged.x[0]), float(result.converged.x[-1])), (-0.05, 1.05),
                          f"G frozen, D trained: max |D - D*| = {result.numbers['max_abs_d_error']:.3f}"),
                    result.converged, result.bulk)
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
