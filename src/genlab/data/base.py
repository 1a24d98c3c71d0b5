"""What every dataset builder returns: the whole split in memory as tensors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TensorDataset:
    """A whole split held in memory (no per-sample decoding in the training loop).

    x: images uint8 ``[N, C, H, W]`` in 0..255, or toy points float32 ``[N, D]``.
    y: class labels int64 ``[N]``, ground-truth factor values float32 ``[N, K]``, or None.
    y_names: class names (labels) or factor names (factors), in column order.
    num_classes: number of classes when ``y`` holds class labels, else 0.
    """

    name: str
    x: Tensor
    y: Tensor | None = None
    y_names: tuple[str, ...] = ()
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.y is not None and self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"{self.name}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def is_image(self) -> bool:
        return self.x.dtype == torch.uint8 and self.x.dim() == 4

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 28, 28) or (2,)."""
        return tuple(self.x.shape[1:])
