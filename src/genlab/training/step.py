"""The seam between the one training loop and a model family.

A family (VAE, GAN, classifier, later pix2pix and CycleGAN) is a :class:`Step`: the
modules it owns, its optimisers, the phases of one iteration and what it exports.
``train()`` in ``loop.py`` owns everything else: batches, which modules a phase trains
(``requires_grad`` and DDP), backward, clipping, learning-rate schedules, NaN checks,
logging, snapshots, checkpoints and exact resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from genlab.data.base import Batch
from genlab.images import Grid


class LossOutput(NamedTuple):
    loss: Tensor  # the scalar the phase's optimiser minimises
    stats: dict[str, Tensor | float]  # named scalars to log, e.g. {"kl": ..., "D(x)": ...}


@dataclass(frozen=True)
class Phase:
    """One optimiser update, repeated ``repeats`` times per iteration.

    ``trains`` names the modules this phase updates. While it runs, the loop turns
    ``requires_grad`` off for every other module (and restores it afterwards, even when the
    loss raises), and under DDP calls those other modules unwrapped, so that they are
    neither given gradients nor synchronised.
    ``reuse_batch=True`` sees the previous phase's batch (a GAN's G step needs no new real
    images; pix2pix's G step needs the same pairs D just saw).
    ``after_step`` runs after each optimiser step: per-step parameter updates only
    (weight clipping, EMA), never learning rates, which the loop schedules.
    """

    name: str
    optimizer: str
    trains: tuple[str, ...]
    loss: Callable[[Batch], LossOutput]
    repeats: int = 1
    reuse_batch: bool = False
    after_step: Callable[[], None] | None = None


class Export(NamedTuple):
    """What ``genlab.load`` returns: the weights of ``module`` built as the model's ``role``.

    E.g. ``Export("G_ema", "G")``: the EMA copy's weights in a network built like G.
    """

    module: str  # key of Step.modules
    role: str  # key of the model builder's output (see genlab.models.build_model)


class Step(ABC):
    """Base of every family's step. The contract:

    - ``modules``: every module checkpointed, EMA copies included;
    - ``optimizers``: by name, referenced by ``Phase.optimizer``;
    - ``export``: the model a run exports (see :class:`Export`);
    - :meth:`phases`: the updates of one iteration, in order;
    - :meth:`snapshots`: images from fixed inputs, drawn without touching the global RNG;
    - :meth:`state_dict` / :meth:`load_state_dict`: state that is not a module (counters,
      health history, image pools), plain containers and tensors, saved with the training
      state so that a resumed run stays bitwise identical;
    - losses call networks through ``self.nets``, which the loop points at DDP-wrapped
      modules for the modules the running phase trains.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    export: Export

    @property
    def nets(self) -> dict[str, nn.Module]:
        return getattr(self, "_nets", self.modules)

    @nets.setter
    def nets(self, value: dict[str, nn.Module]) -> None:
        self._nets = value

    @abstractmethod
    def phases(self) -> list[Phase]: ...

    @abstractmethod
    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Images to save on the snapshot cadence, from a fixed real batch and a fixed seed."""

    def prepare_export(self) -> None:
        """Bring state that training does not read up to date before the modules are shown or saved
        (e.g. an EMA generator's batch-norm statistics): called before every snapshot and checkpoint."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")

    def check_health(self, stats: dict[str, float], iteration: int) -> list[str]:
        """Warnings about the training dynamics, given the latest averaged stats."""
        return []
