"""The one place where images change representation.

Datasets and files hold uint8 ``[N, C, H, W]`` in 0..255; models see float in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor


class Grid(NamedTuple):
    """Images meant to be seen together, e.g. a snapshot or a traversal."""

    images: Tensor  # [N, C, H, W] float in [-1, 1]
    nrow: int  # images per row in the saved PNG


def to_model(images: Tensor) -> Tensor:
    """uint8 ``[N, C, H, W]`` in 0..255 -> float32 in [-1, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: Tensor) -> Tensor:
    """float ``[N, C, H, W]`` in [-1, 1] -> uint8 in 0..255 (values outside are clipped)."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp_(0, 255).to(torch.uint8).cpu()


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2) -> Tensor:
    """Tile float images in [-1, 1] into one uint8 ``[C, H, W]`` grid."""
    import torchvision.utils

    return torchvision.utils.make_grid(to_uint8(images), nrow=nrow, padding=padding, pad_value=255)


def save_grid(images: Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write float images in [-1, 1] as one PNG grid; returns the path."""
    from PIL import Image

    grid = make_grid(images, nrow=nrow)
    array = grid.permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if array.shape[2] == 1 else "RGB"
    Image.fromarray(array[:, :, 0] if mode == "L" else array, mode=mode).save(path)
    return path
