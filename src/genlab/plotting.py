"""Minimal line and scatter plots drawn with PIL, for figures without a plotting library.

A :class:`Panel` maps data coordinates into a pixel box of a shared ``PIL.Image`` and
draws curves, points, axes and a legend. Colours are RGB tuples. Figures of one experiment
live with it (the 1-D GAN theory figure: :mod:`genlab.experiments.theory_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]
BLACK: Color = (0, 0, 0)
GREY: Color = (150, 150, 150)
GREEN, BLUE, RED = (20, 140, 60), (30, 80, 200), (200, 40, 40)
ORANGE, PURPLE, TEAL = (230, 130, 20), (130, 60, 170), (20, 150, 160)
PALETTE: tuple[Color, ...] = (BLUE, RED, GREEN, ORANGE, PURPLE, TEAL, GREY)


def font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
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
        self,
        image: Image.Image,
        box: tuple[int, int, int, int],
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        title: str = "",
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
            self.draw.line(list(zip(u, v, strict=True)), fill=color, width=width, joint="curve")
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
        for a, b in zip(u[keep], v[keep], strict=True):
            box = [a - radius, b - radius, a + radius, b + radius]
            if filled:
                self.draw.ellipse(box, fill=color)
            else:
                self.draw.ellipse(box, outline=color, width=1)

    def axes(
        self,
        xlabel: str = "",
        ylabel: str = "",
        xticks: Sequence[float] | None = None,
        yticks: Sequence[float] | None = None,
    ) -> None:
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
        """Entries (label, colour, dash) stacked in a corner of the box: "left" or "right" (top), or
        "bottom-left" or "bottom-right"; the card is as wide as its longest label."""
        left, top, right, bottom = self.box
        width = 46 + max(self.draw.textlength(label, font=self.font) for label, _, _ in items)
        height = 18 * len(items) + 4
        x0 = left + 8 if corner.endswith("left") else right - width - 4
        y0 = bottom - height - 6 if corner.startswith("bottom") else top + 2
        # A white card, so that curves passing under the legend do not cross its text.
        self.draw.rectangle([x0 - 4, y0, x0 + width - 8, y0 + height], fill=(255, 255, 255), outline=GREY)
        for i, (label, color, dash) in enumerate(items):
            y = y0 + 10 + 18 * i
            xs = np.linspace(x0, x0 + 28, 15)
            if dash:
                for a, b in zip(xs[::2][:-1], xs[1::2], strict=False):
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
        panel = Panel(
            image,
            (60 + 320 * i, 50, 320 * (i + 1) - 10, height - 60),
            (-0.5, len(x_labels) - 0.5),
            (lo - pad, hi + pad),
            title=name,
        )
        panel.line(xs, np.asarray(values, dtype=float), BLUE)
        panel.points(xs, np.asarray(values, dtype=float), BLUE, radius=3)
        panel.axes(xlabel=xlabel, xticks=[])
        for x, label in zip(xs, x_labels, strict=False):
            u, _ = panel.to_pixels(np.array([x]), np.array([panel.ylim[0]]))
            panel.draw.text((u[0], panel.box[3] + 6), label, fill=BLACK, font=panel.font, anchor="mt")
    path = Path(path)
    image.save(path)
    return path


Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def draw_lines(
    panels: dict[str, Series],
    xlabel: str,
    path: str | Path,
    ylims: dict[str, tuple[float, float]] | None = None,
    legend: str = "bottom-right",
) -> Path:
    """One panel per entry of ``panels`` (its title: a y label with units), each a dict of
    labelled (x, y) series over a numeric x axis, with a legend: e.g. a metric against kimg for
    several recipes. Series with the same label share a colour across panels; ``ylims`` fixes a
    panel's y range (e.g. (0, 1) for an accuracy); ``legend`` is its corner (see :meth:`Panel.legend`)."""
    width, height = 80 + 520 * len(panels), 380
    image = Image.new("RGB", (width, height), (255, 255, 255))
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    for i, (title, series) in enumerate(panels.items()):
        arrays = {label: (np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for label, (x, y) in series.items()}
        xs = np.concatenate([x for x, _ in arrays.values()])
        ys = np.concatenate([y for _, y in arrays.values()])
        fixed = (ylims or {}).get(title)
        lo, hi = fixed or (float(ys.min()), float(ys.max()))
        pad = 0.0 if fixed else (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        x_lo, x_hi = float(xs.min()), float(xs.max())
        box = (80 + 520 * i, 50, 520 * (i + 1) - 20, height - 60)
        panel = Panel(image, box, (x_lo, x_hi if x_hi > x_lo else x_lo + 1), (lo - pad, hi + pad), title)
        for label, (x, y) in arrays.items():
            panel.line(x, y, colours[label])
            panel.points(x, y, colours[label], radius=2.5)
        panel.axes(xlabel=xlabel)
        panel.legend([(label, colours[label], 0) for label in series], corner=legend)
    path = Path(path)
    image.save(path)
    return path


def draw_scenes(
    observed: np.ndarray, truth: np.ndarray, predictions: np.ndarray, size: int = 240, extent: float = 9.0
) -> Image.Image:
    """Scenes side by side: each person's observed path (black), true future (green) and predicted futures
    (red, thin), in metres around the origin (+-``extent``). observed [S, A, To, 2], truth [S, A, Tp, 2],
    predictions [K, S, A, Tp, 2]."""
    scenes = observed.shape[0]
    image = Image.new("RGB", (size * scenes, size), (255, 255, 255))
    for s in range(scenes):
        panel = Panel(image, (s * size + 4, 4, (s + 1) * size - 4, size - 4), (-extent, extent), (-extent, extent))
        panel.draw.rectangle(panel.box, outline=GREY, width=1)
        for a in range(observed.shape[1]):
            start = observed[s, a, -1:]
            for k in range(predictions.shape[0]):
                path = np.concatenate([start, predictions[k, s, a]])
                panel.line(path[:, 0], path[:, 1], (220, 60, 60), width=1)
            path = np.concatenate([start, truth[s, a]])
            panel.line(path[:, 0], path[:, 1], (40, 160, 60), width=2)
            panel.line(observed[s, a, :, 0], observed[s, a, :, 1], BLACK, width=2)
            panel.points(observed[s, a, -1:, 0], observed[s, a, -1:, 1], BLACK, radius=2.5)
    return image


def draw_labelled_rows(labels: Sequence[str], rows: Sequence[np.ndarray], scale: int = 2) -> Image.Image:
    """One row of images per label, the label written left of it: e.g. caption | samples. ``rows`` are
    uint8 image grids [H, W, 3] (one per label, e.g. ``make_grid`` of a row), shown ``scale`` times larger."""
    text = font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 12 + int(max(probe.textlength(label, font=text) for label in labels))
    height = max(row.shape[0] for row in rows) * scale
    image = Image.new("RGB", (left + max(row.shape[1] for row in rows) * scale, height * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, (label, row) in enumerate(zip(labels, rows, strict=True)):
        tile = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.Resampling.NEAREST)
        image.paste(tile, (left, i * height))
        draw.text((6, i * height + height / 2), label, fill=BLACK, font=text, anchor="lm")
    return image
