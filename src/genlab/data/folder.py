"""A folder of the user's own images, decoded once into memory.

Files are found recursively in sorted order, so a folder always gives the same dataset.
Each image is resized so its shorter side is ``image_size`` and centre-cropped to a square.
A file that is not a readable image is skipped with one warning naming it, so that one bad
file among thousands does not stop a run. Images in sub-folders are labelled by sub-folder.
Any mode PIL reads is converted: 16-bit grey keeps its levels (the high byte), an image with
transparency (RGBA, LA, a palette with a transparent colour) is composited onto white.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, TypeVar

import numpy as np
import torch
from PIL import Image, ImageOps

from genlab.config import EXAMPLE_FILES, PROBABILITY, DataConfig, Range, at_least, one_of
from genlab.data import base
from genlab.errors import DataError
from genlab.registry import register_dataset

T = TypeVar("T")


@dataclass
class FolderConfig(DataConfig):
    """Keys of the ``image_folder`` dataset."""

    path: str
    image_size: int = 64  # output height = width: shorter side resized, then centre-cropped
    channels: int = 3  # 1 = grey, 3 = RGB
    test_fraction: float = 0.1  # share of files held out for the test split, chosen by file name
    max_pixels: int = 89_478_485  # PIL's default; larger images are refused (decompression bombs)

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(1),
        "channels": one_of(1, 3, note="grey or RGB"),
        "test_fraction": PROBABILITY,
        "max_pixels": at_least(1),
    }
    example: ClassVar[dict] = {"path": EXAMPLE_FILES, "image_size": 16, "test_fraction": 0.5}


@register_dataset("image_folder", FolderConfig)
def build(cfg: FolderConfig, split: str) -> base.TensorDataset:
    """Decode the split: ``image`` uint8 [N, channels, image_size, image_size], ``label`` int64 [N] with class
    folders."""
    root = Path(cfg.path).expanduser()
    files = list_files(root)
    classes = class_names(root, files)
    chosen = [f for f in files if in_test_split(f.relative_to(root), cfg.test_fraction) == (split == "test")]
    images, labels = [], []
    for file in chosen:
        folder = file.relative_to(root).parts[0]
        if classes and folder not in classes:
            warnings.warn(
                f"image_folder: skipping {file}: it lies outside the class sub-folders {classes}",
                stacklevel=2,
            )
            continue
        image = _decode(file, cfg.image_size, cfg.channels, cfg.max_pixels)
        if image is not None:
            images.append(image)
            labels += [classes.index(folder)] if classes else []
    if not images:
        raise DataError(
            f"image_folder: no readable images for the {split} split in {root} ({len(files)} "
            f"files in all, {len(chosen)} in this split; see the warnings for skipped files). "
            f"Point data.path at a folder of PNG/JPEG images, or change data.test_fraction "
            f"(now {cfg.test_fraction})."
        )
    x = torch.from_numpy(np.stack(images))
    x = x[:, None] if cfg.channels == 1 else x.permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
    spec: base.Spec = {"image": base.Image(cfg.channels, cfg.image_size, cfg.image_size)}
    fields = {"image": x}
    if classes:
        spec["label"], fields["label"] = base.Classes(tuple(classes)), torch.tensor(labels, dtype=torch.int64)
    return base.TensorDataset("image_folder", spec, fields)


def list_files(root: Path) -> list[Path]:
    """Every visible file under root, recursively, in sorted order."""
    if not root.is_dir():
        raise DataError(f"image_folder: {root} is not a folder; set data.path to a folder of images")
    # Hidden entries (.DS_Store, .git, ...) are never images a user meant to train on.
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise DataError(f"image_folder: {root} is empty; put images (PNG, JPEG, ...) in it")
    return files


def class_names(root: Path, files: list[Path]) -> list[str]:
    """Sorted names of the sub-folders holding images when no image lies at the top; else [].

    Judged by file extension only, so that a README next to the class folders does not
    turn labels off.
    """
    extensions = Image.registered_extensions()
    parts = [f.relative_to(root).parts for f in files if f.suffix.lower() in extensions]
    if not parts or any(len(p) == 1 for p in parts):
        return []
    return sorted({p[0] for p in parts})


def in_test_split(relative: Path, test_fraction: float) -> bool:
    """Whether a file belongs to the test split: a hash of its relative path, so a file's
    split never changes when other files are added or removed."""
    digest = hashlib.sha256(relative.as_posix().encode()).digest()
    return int.from_bytes(digest[:8], "big") < test_fraction * 2**64


class TooLarge(Exception):
    """An image over the pixel limit, refused from its header before decoding; the message gives its size."""


class _OverPILLimit(TooLarge):
    """Over twice ``PIL.Image.MAX_IMAGE_PIXELS``: refused inside ``Image.open``, whatever max_pixels allows."""


def _decode(file: Path, size: int, channels: int, max_pixels: int) -> np.ndarray | None:
    """uint8 [size, size] (grey) or [size, size, 3], or None after one warning naming the file."""
    return read_or_warn(
        "image_folder", file, max_pixels, lambda: _read_image(file, size, "L" if channels == 1 else "RGB", max_pixels)
    )


def read_or_warn(dataset: str, file: Path, max_pixels: int, read: Callable[[], T]) -> T | None:
    """``read()``, or None after one warning naming the file when it is not a usable image."""
    try:
        return read()
    # Broken files make decoders raise almost anything (OSError, SyntaxError, struct.error,
    # ValueError, ...); each means "not a usable image".
    except Exception as err:
        reason = unusable_reason(err)
        if isinstance(err, TooLarge) and not isinstance(err, _OverPILLimit):
            reason += "; raise data.max_pixels if you trust it"
    warnings.warn(f"{dataset}: skipping {file}: {reason}", stacklevel=3)
    return None


def unusable_reason(err: Exception) -> str:
    """Why :func:`open_image` (or a decoder behind it) could not give an image, for a message naming the file."""
    if isinstance(err, TooLarge):
        return f"{err} (possible decompression bomb)"
    return f"not a readable image ({type(err).__name__}: {err})"


def open_image(file: Path | IO[bytes], mode: str, max_pixels: int, draft: tuple[int, int] | None = None) -> Image.Image:
    """``file`` decoded in ``mode`` ("L" or "RGB"), EXIF orientation applied; images over
    ``max_pixels`` are refused from the header, before decoding (:class:`TooLarge`).

    What PIL warns about an image it still decodes (corrupt EXIF data, ...) is warned again
    naming the file; a file that fails raises, and its caller's message says why.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Our own limit applies; PIL's global one would warn a second time about the same file.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            opened = Image.open(file)
        except Image.DecompressionBombError:  # PIL says no size, only that it is over its limit
            assert Image.MAX_IMAGE_PIXELS is not None  # PIL raises this only under a limit
            raise _OverPILLimit(
                f"the header claims over {2 * Image.MAX_IMAGE_PIXELS} pixels, twice PIL.Image.MAX_IMAGE_PIXELS"
            ) from None
        with opened as image:
            if image.width * image.height > max_pixels:
                raise TooLarge(f"{image.width}x{image.height} pixels is over max_pixels={max_pixels}")
            if draft is not None:
                image.draft(mode, draft)  # JPEG decodes at a reduced scale: much faster
            sixteen_bit = image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG")
            image = ImageOps.exif_transpose(image)
            if sixteen_bit:  # convert() would clip every level above 255: a white image
                image = Image.fromarray((np.asarray(image).clip(0, 65535) >> 8).astype(np.uint8))
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # Hidden colours under transparent pixels are arbitrary; PIL also warns about palette ones.
                image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
            image = image.convert(mode)
    for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        warnings.warn(f"reading {file}: {message}", stacklevel=2)
    return image


def _read_image(file: Path, size: int, mode: str, max_pixels: int) -> np.ndarray:
    image = open_image(file, mode, max_pixels, draft=(size, size))
    return np.asarray(ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS), dtype=np.uint8)
