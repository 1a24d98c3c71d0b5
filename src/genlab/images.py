"""The one place where images change representation.

Datasets and files hold uint8 ``[N, C, H, W]`` in 0..255; models see float in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
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


def fit_image(image: Image.Image, shape: tuple[int, int, int], name: str) -> tuple[Tensor, str | None]:
    """A decoded "L" or "RGB" image as uint8 ``[C, H, W]`` of ``shape``, and a note naming ``name`` when
    it had to be resized (PIL bicubic, stretched where the aspect ratio differs)."""
    channels, height, width = shape
    note = None
    if image.size != (width, height):
        note = f"resized {name} from {image.width}x{image.height} to the model's {width}x{height} (PIL bicubic)"
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.uint8)
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy()), note


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


def save_strip(images: Tensor, path: str | Path) -> Path:
    """One row of images ``[S, C, H, W]`` in [-1, 1] as a PNG."""
    return save_grid(images, path, nrow=images.shape[0])


def save_gif(images: Tensor, path: str | Path, frame_ms: int = 120, bounce: bool = True) -> Path:
    """Images ``[S, C, H, W]`` in [-1, 1] as an endlessly looping GIF, one frame each; ``bounce`` plays
    them forwards then backwards so the loop has no jump."""
    from PIL import Image

    frames = list(to_uint8(images).permute(0, 2, 3, 1).numpy())
    if bounce and len(frames) > 2:
        frames = [*frames, *frames[-2:0:-1]]
    pictures = [Image.fromarray(f[:, :, 0] if f.shape[2] == 1 else f) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return path
