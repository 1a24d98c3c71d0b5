"""``paired_folder``: pix2pix's aligned pairs (facades, maps, edges2shoes, ...) from a folder.

Layout (Isola et al. 2017's datasets as downloaded)::

    path/train/*.jpg    each file is A | B side by side: width 2W, height H
    path/test/*.jpg     (or path/val/ when there is no test/)

or, with separate halves matched by file name, ``path/train/A/x.png`` + ``path/train/B/x.png``.
Each half is resized to image_size x image_size (no crop, as pix2pix's resize). ``AtoB`` makes
A the source; facades' A is the photo, so labels -> photo is ``BtoA``. Files with an odd
width, unreadable files and halves without a partner are skipped with one warning naming
each; a split left with no pairs is a DataError.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from PIL import Image as PILImage

from genlab.config import EXAMPLE_FILES, DataConfig, Range, at_least, one_of
from genlab.data.base import Image, TensorDataset
from genlab.data.folder import list_files, open_image, read_or_warn
from genlab.errors import DataError
from genlab.registry import register_dataset


@dataclass
class PairedFolderConfig(DataConfig):
    """Keys of the ``paired_folder`` dataset."""

    path: str  # holds train/ and test/ (or val/)
    image_size: int = 64  # each half is resized to image_size x image_size
    channels: int = 3  # 1 = grey, 3 = RGB
    direction: Literal["AtoB", "BtoA"] = "AtoB"  # AtoB: source = left (or A/), target = right (or B/)
    max_pixels: int = 89_478_485  # PIL's default; larger files are refused (decompression bombs)

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(1),
        "channels": one_of(1, 3, note="grey or RGB"),
        "max_pixels": at_least(1),
    }
    example: ClassVar[dict] = {"path": EXAMPLE_FILES, "image_size": 16}


@register_dataset("paired_folder", PairedFolderConfig)
def build(cfg: PairedFolderConfig, split: str) -> TensorDataset:
    """``source``, ``target`` uint8 [N, channels, image_size, image_size]."""
    source, target, _ = read_pairs(split_folder(Path(cfg.path).expanduser(), split), cfg)
    field = Image(cfg.channels, cfg.image_size, cfg.image_size)
    return TensorDataset("paired_folder", {"source": field, "target": field}, {"source": source, "target": target})


def read_pairs(folder: Path, cfg: PairedFolderConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``source``, ``target`` uint8 [N, channels, image_size, image_size] and each pair's name (its file's
    stem), from one split folder of A|B files or of A/ and B/ sub-folders, as ``cfg`` reads them."""
    mode = "L" if cfg.channels == 1 else "RGB"
    if (folder / "A").is_dir() and (folder / "B").is_dir():
        named = _matched_halves(folder, mode, cfg)
    else:
        # B023 (below) is a false alarm: read_or_warn calls the lambda at once, inside this iteration
        named = [
            (file.stem, p)
            for file in list_files(folder)
            if (p := read_or_warn("paired_folder", file, cfg.max_pixels, lambda: _side_by_side(file, mode, cfg)))  # noqa: B023
            is not None
        ]
    if not named:
        raise DataError(
            f"paired_folder: no usable pairs in {folder} (see the warnings for skipped files); "
            "it needs A|B images side by side, or A/ and B/ folders of matching file names"
        )
    a, b = (_to_tensor([pair[i] for _, pair in named], cfg.channels) for i in (0, 1))
    source, target = (a, b) if cfg.direction == "AtoB" else (b, a)
    return source, target, [name for name, _ in named]


def split_folder(root: Path, split: str) -> Path:
    """root/train for "train"; root/test, else root/val, for "test"."""
    for name in ("train",) if split == "train" else ("test", "val"):
        if (root / name).is_dir():
            return root / name
    wanted = "train/" if split == "train" else "test/ or val/"
    raise DataError(
        f"paired_folder: {root} has no {wanted} folder; set data.path to a folder holding "
        "train/ and test/ (or val/) sub-folders of A|B images"
    )


Half = np.ndarray  # uint8 [S, S] or [S, S, 3]


def _side_by_side(file: Path, mode: str, cfg: PairedFolderConfig) -> tuple[Half, Half] | None:
    image = open_image(file, mode, cfg.max_pixels)
    if image.width % 2:
        warnings.warn(
            f"paired_folder: skipping {file}: its width {image.width} is odd, so it cannot be "
            "split into two equal A|B halves",
            stacklevel=4,
        )
        return None
    half = image.width // 2
    left = _resize(image.crop((0, 0, half, image.height)), cfg.image_size)
    right = _resize(image.crop((half, 0, image.width, image.height)), cfg.image_size)
    return left, right


def _matched_halves(folder: Path, mode: str, cfg: PairedFolderConfig) -> list[tuple[str, tuple[Half, Half]]]:
    sides = {
        side: {f.relative_to(folder / side).with_suffix(""): f for f in list_files(folder / side)}
        for side in ("A", "B")
    }
    for side, other in (("A", "B"), ("B", "A")):
        for stem in sorted(sides[side].keys() - sides[other].keys()):
            warnings.warn(
                f"paired_folder: skipping {sides[side][stem]}: no file of that name in {folder / other}", stacklevel=3
            )
    pairs = []
    for stem in sorted(sides["A"].keys() & sides["B"].keys()):
        halves = [
            read_or_warn(
                "paired_folder",
                sides[s][stem],
                cfg.max_pixels,
                # read_or_warn calls the lambda at once, inside this iteration
                lambda: _resize(open_image(sides[s][stem], mode, cfg.max_pixels), cfg.image_size),  # noqa: B023
            )
            for s in ("A", "B")
        ]
        if halves[0] is not None and halves[1] is not None:
            pairs.append((str(stem), (halves[0], halves[1])))
    return pairs


def _resize(image: PILImage.Image, size: int) -> Half:
    return np.asarray(image.resize((size, size), PILImage.Resampling.LANCZOS), dtype=np.uint8)


def _to_tensor(halves: list[Half], channels: int) -> torch.Tensor:
    x = torch.from_numpy(np.stack(halves))
    return x[:, None] if channels == 1 else x.permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
