"""What the objectives of one network share (the VAE, the classifier, the text-image embedding): one
Adam optimiser, one phase that trains the network, the network as the export; no image snapshots
unless the step draws some (the VAE's)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ObjectiveConfig, Range
from genlab.data.base import Batch
from genlab.images import Grid
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step


@dataclass
class AdamObjectiveConfig(ObjectiveConfig):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    bounds: ClassVar[dict[str, Range]] = {"lr": POSITIVE, "betas": PROBABILITY, "weight_decay": NON_NEGATIVE}


class SingleNetworkStep(Step):
    """The module ``name`` trained by Adam on :meth:`loss` in one phase of the same name, and exported."""

    def __init__(self, name: str, module: nn.Module, cfg: AdamObjectiveConfig) -> None:
        self.export = Export(name, name)
        self.modules = {name: module}
        self.optimizers = {name: adam(module.parameters(), cfg.lr, cfg.betas, cfg.weight_decay)}

    def phases(self) -> list[Phase]:
        name = self.export.module
        return [Phase(name, name, (name,), self.loss)]

    @abstractmethod
    def loss(self, batch: Batch) -> LossOutput: ...

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        return {}  # the network makes no images: its progress is the logged statistics
