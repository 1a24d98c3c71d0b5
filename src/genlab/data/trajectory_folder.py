"""Recorded crowds in the ETH/UCY text format (Pellegrini et al. 2009, Lerner et al. 2007), as Social GAN
distributes them: ``path/train/*.txt`` and ``path/test/*.txt``, one line per person per frame,
``frame  person  x  y`` (tabs or spaces, metres, frames 0.4 s apart).

An example is a window of ``observed + predicted`` consecutive frames of one file: the people present
in every frame of it, in groups of ``agents`` (by person id; a window with fewer people gives none),
every ``stride`` frames. Social GAN pools over all the people of a window, however many; genlab's
scenes hold a fixed number, so a crowd of nine with ``agents: 4`` gives two scenes and leaves one out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from genlab.config import EXAMPLE_FILES, DataConfig, Range, at_least
from genlab.data.base import Spec, TensorDataset, Trajectories
from genlab.errors import DataError
from genlab.registry import register_dataset


@dataclass
class TrajectoryFolderConfig(DataConfig):
    path: str = ""  # a folder with train/ and test/ subfolders of ETH/UCY .txt files
    agents: int = 3
    observed: int = 8
    predicted: int = 12
    stride: int = 1  # frames between the starts of consecutive windows
    bounds: ClassVar[dict[str, Range]] = {
        "agents": at_least(1),
        "observed": at_least(2),
        "predicted": at_least(1),
        "stride": at_least(1),
    }
    example: ClassVar[dict] = {"path": EXAMPLE_FILES, "agents": 2, "observed": 3, "predicted": 2}


def read_tracks(file: Path) -> np.ndarray:
    """The rows (frame, person, x, y) of one file, float64 [R, 4]."""
    try:
        rows = np.loadtxt(file, ndmin=2)
    except ValueError as err:
        raise DataError(f"trajectory_folder: {file} is not 'frame person x y' rows of numbers: {err}") from None
    if rows.shape[1] != 4:
        raise DataError(f"trajectory_folder: {file} has {rows.shape[1]} columns; expected 4 (frame person x y)")
    return rows


def write_tracks(file: Path, paths: np.ndarray, frame_step: int = 10) -> None:
    """People's paths [P, T, 2] as rows in this format (ids 0..P-1, frames ``frame_step`` apart): a simulated
    crowd for tools that read ETH/UCY files, and :func:`read_tracks`'s inverse."""
    rows = [
        f"{frame_step * t}\t{p}\t{x:.4f}\t{y:.4f}"
        for t in range(paths.shape[1])
        for p, (x, y) in enumerate(paths[:, t])
    ]
    file.write_text("\n".join(rows) + "\n")


def windows(rows: np.ndarray, agents: int, steps: int, stride: int) -> list[np.ndarray]:
    """Scenes [agents, steps, 2] of one file's rows: every window of ``steps`` consecutive frames, the people
    present in all of them in groups of ``agents`` by id."""
    frames = np.unique(rows[:, 0])
    by_frame = {f: {int(p): (x, y) for _, p, x, y in rows[rows[:, 0] == f]} for f in frames}
    scenes = []
    for start in range(0, len(frames) - steps + 1, stride):
        window = [by_frame[f] for f in frames[start : start + steps]]
        people = sorted(set.intersection(*(set(w) for w in window)))
        for g in range(len(people) // agents):
            group = people[g * agents : (g + 1) * agents]
            scenes.append(np.array([[w[p] for w in window] for p in group]))
    return scenes


@register_dataset("trajectory_folder", TrajectoryFolderConfig)
def build(cfg: TrajectoryFolderConfig, split: str) -> TensorDataset:
    folder = Path(cfg.path).expanduser() / split
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise DataError(
            f"trajectory_folder: no .txt files in {folder}; set data.path to a folder with train/ and test/ "
            "subfolders of ETH/UCY files ('frame person x y' per line), as Social GAN's datasets are laid out"
        )
    steps = cfg.observed + cfg.predicted
    scenes = [s for f in files for s in windows(read_tracks(f), cfg.agents, steps, cfg.stride)]
    if not scenes:
        raise DataError(
            f"trajectory_folder: no window of {steps} frames in {folder} holds {cfg.agents} people throughout; "
            "lower data.agents or data.observed + data.predicted"
        )
    paths = torch.from_numpy(np.stack(scenes).astype(np.float32))
    spec: Spec = {"paths": Trajectories(cfg.agents, steps, cfg.observed)}
    return TensorDataset("trajectory_folder", spec, {"paths": paths})
