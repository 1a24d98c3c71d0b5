"""The seam between the one training loop and a model family.

A family (VAE, GAN, pix2pix, classifier) is a :class:`Step`: the modules it owns,
its optimisers, and the phases of one iteration. ``train()`` in ``loop.py`` owns
everything else (batches, backward, clipping, NaN checks, logging, checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One minibatch as models see it.

    x: images ``[N, C, H, W]`` float in [-1, 1], or toy points ``[N, D]``.
    y: class labels ``[N]`` int64, factor values ``[N, K]`` float, or None.
    """

    x: Tensor
    y: Tensor | None = None

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.x.to(device), None if self.y is None else self.y.to(device))

    def __len__(self) -> int:
        return self.x.shape[0]


class LossOutput(NamedTuple):
    loss: Tensor  # the scalar the phase's optimiser minimises
    stats: dict[str, Tensor | float]  # named scalars to log, e.g. {"kl": ..., "D(x)": ...}


@dataclass(frozen=True)
class Phase:
    """One optimiser update, repeated ``repeats`` times per iteration.

    ``fresh_batch=False`` reuses the previous phase's batch (a GAN's G step needs no
    new real images; pix2pix's G step needs the same pairs D just saw).
    ``after_step`` runs after each optimiser step (weight clipping, EMA update).
    """

    name: str
    optimizer: str
    loss: Callable[[Batch], LossOutput]
    repeats: int = 1
    fresh_batch: bool = True
    after_step: Callable[[], None] | None = None


class Grid(NamedTuple):
    images: Tensor  # [N, C, H, W] float in [-1, 1]
    nrow: int  # images per row in the saved PNG


class Step:
    """Base class of every family's step.

    Subclasses set ``modules`` (everything checkpointed, EMA copies included),
    ``optimizers`` and ``export_name`` (the module ``genlab.load`` returns), and
    implement :meth:`phases` and :meth:`snapshots`. Losses must call networks through
    ``self.nets`` so that the loop can substitute DDP-wrapped versions.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    export_name: str

    @property
    def nets(self) -> dict[str, nn.Module]:
        return getattr(self, "_nets", self.modules)

    def wrap(self, wrapper: Callable[[nn.Module], nn.Module]) -> None:
        """Route forward passes of trainable modules through ``wrapper`` (DDP)."""
        self._nets = {
            name: wrapper(m) if any(p.requires_grad for p in m.parameters()) else m
            for name, m in self.modules.items()
        }

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Images to save on the snapshot cadence, from a fixed real batch and a fixed seed.

        Must not touch the global RNG: resumed runs stay bitwise identical.
        """
        raise NotImplementedError

    def check_health(self, stats: dict[str, float], step: int) -> list[str]:
        """Warnings about the training dynamics, given the latest averaged stats."""
        return []
