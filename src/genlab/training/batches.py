"""Infinite, seeded, resumable minibatches from a dataset held in memory."""

from __future__ import annotations

import torch

from genlab.data.base import Batch, TensorDataset
from genlab.errors import ConfigError

# train.memory_format -> the torch layout of conv weights and image batches.
MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def in_layout(batch: Batch, memory_format: torch.memory_format) -> Batch:
    """``batch`` with its image-shaped (4-D) fields in ``memory_format``; the batch itself when they already are."""
    if memory_format == torch.contiguous_format:
        return batch
    return Batch({k: v.contiguous(memory_format=memory_format) if v.dim() == 4 else v for k, v in batch.items()})


class BatchStream:
    """Yields ``Batch``es forever, one shuffled epoch after another.

    Epoch ``e``'s order is a permutation drawn from ``(seed, e)`` alone, and under DDP each
    rank takes a disjoint stride of it, so the position ``(epoch, index)`` is the whole
    state: saving it is enough to resume the exact same batches. The last partial batch
    of an epoch is dropped so every step sees ``batch_size`` examples. Image-shaped (4-D) fields
    come in ``memory_format``.
    """

    def __init__(
        self,
        data: TensorDataset,
        batch_size: int,
        seed: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.per_rank = len(data) // world_size
        if self.per_rank < batch_size:
            raise ConfigError(
                f"{data.name} has {len(data)} examples, fewer than one batch of {batch_size} per process; "
                "lower train.batch_size"
            )
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.device, self.rank, self.world_size = device, rank, world_size
        self.memory_format = memory_format
        self.epoch, self.index = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.data), generator=generator)
        return order[self.rank :: self.world_size][: self.per_rank]

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        if self.index + self.batch_size > self.per_rank:
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._epoch_order()
        idx = self._order[self.index : self.index + self.batch_size]
        self.index += self.batch_size
        return in_layout(self.data.batch(idx, self.device), self.memory_format)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._epoch_order()
