"""The classifier family's step: one phase minimising cross-entropy on labelled images.

It exists so that the metrics' feature network is trained, checkpointed and reloaded
by the same loop and run folders as every generative model. The learning rate follows a
cosine from ``lr`` to 0 over the run; it is computed from the optimiser's own step count,
which checkpoints carry, so a resumed run continues the same schedule exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab import distributed
from genlab.config import ObjectiveConfig, TrainConfig
from genlab.data.base import TensorDataset
from genlab.errors import ConfigError
from genlab.registry import register_objective
from genlab.training.optim import adam
from genlab.training.step import Batch, Grid, LossOutput, Phase, Step


@dataclass
class ClassifierObjectiveConfig(ObjectiveConfig):
    name: str = "classifier"
    family: ClassVar[str] = "classifier"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "cosine"


class ClassifierStep(Step):
    export_name = "classifier"

    def __init__(self, cfg: ClassifierObjectiveConfig, classifier: nn.Module, total_steps: int) -> None:
        self.cfg, self.total_steps = cfg, max(1, total_steps)
        self.modules = {"classifier": classifier}
        self.optimizers = {
            "classifier": adam(classifier.parameters(), cfg.lr, cfg.betas, cfg.weight_decay)
        }

    def phases(self) -> list[Phase]:
        return [Phase("classifier", "classifier", self.loss, after_step=self.anneal if self.cfg.schedule == "cosine" else None)]

    def anneal(self) -> None:
        """Set the learning rate of the next step from the number of steps taken."""
        optimizer = self.optimizers["classifier"]
        taken = int(optimizer.state[optimizer.param_groups[0]["params"][0]]["step"])
        for group in optimizer.param_groups:
            group["lr"] = self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(taken / self.total_steps, 1.0)))

    def loss(self, batch: Batch) -> LossOutput:
        logits = self.nets["classifier"](batch.x).float()
        loss = F.cross_entropy(logits, batch.y)
        accuracy = (logits.argmax(1) == batch.y).float().mean()
        return LossOutput(loss, {"accuracy": accuracy.detach()})

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        return {}  # a classifier makes no images; its progress is the logged accuracy


@register_objective("classifier", ClassifierObjectiveConfig)
def build_classifier_step(
    cfg: ClassifierObjectiveConfig, modules: dict[str, nn.Module], data: TensorDataset, train: TrainConfig
) -> ClassifierStep:
    if data.y is None or data.y.dim() != 1:
        raise ConfigError(f"objective 'classifier' needs class labels, but {data.name} has none")
    # Optimiser steps of one process: every process takes batch_size of the images counted.
    steps = round(train.kimg * 1000 / (train.batch_size * distributed.world_size()))
    return ClassifierStep(cfg, modules["classifier"], total_steps=steps)
