"""The embedding family's step: one phase of symmetric InfoNCE between captions and their images.

It pre-trains the text encoder that a ``text_gan`` reads frozen (``model.text_encoder``), with
the same loop, run folders and export as every model. Progress is the logged retrieval
accuracy: how often a caption's nearest image in the batch is one it describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ObjectiveConfig, Range, TrainConfig
from genlab.data.base import Batch, Image, Spec, Tokens, describe
from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.losses.contrastive import identical_rows, symmetric_info_nce
from genlab.registry import register_objective
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step


@dataclass
class ContrastiveObjectiveConfig(ObjectiveConfig):
    name: str = "contrastive"
    family: ClassVar[str] = "embedding"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    bounds: ClassVar[dict[str, Range]] = {"lr": POSITIVE, "betas": PROBABILITY, "weight_decay": NON_NEGATIVE}


class ContrastiveStep(Step):
    export = Export("embedding", "embedding")

    def __init__(self, cfg: ContrastiveObjectiveConfig, embedding: nn.Module) -> None:
        self.modules = {"embedding": embedding}
        self.optimizers = {"embedding": adam(embedding.parameters(), cfg.lr, cfg.betas, cfg.weight_decay)}

    def phases(self) -> list[Phase]:
        return [Phase("embedding", "embedding", ("embedding",), self.loss)]

    def loss(self, batch: Batch) -> LossOutput:
        """Symmetric InfoNCE with identical captions as each other's positives; text->image top-1 accuracy."""
        text, images, scale = (t.float() for t in self.nets["embedding"](batch["caption"], batch["image"]))
        positives = identical_rows(batch["caption"])
        nearest = (text @ images.T).argmax(dim=1)
        retrieved = positives[torch.arange(len(nearest), device=nearest.device), nearest]
        return LossOutput(symmetric_info_nce(text, images, scale, positives),
                          {"text->image top-1": retrieved.float().mean(), "logit_scale": scale.detach()})

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        return {}  # an embedding makes no images; its progress is the logged retrieval accuracy


@register_objective("contrastive", ContrastiveObjectiveConfig)
def build_contrastive_step(cfg: ContrastiveObjectiveConfig, modules: dict[str, nn.Module], spec: Spec,
                           train: TrainConfig) -> ContrastiveStep:
    if not (isinstance(spec.get("image"), Image) and isinstance(spec.get("caption"), Tokens)):
        raise ConfigError(f"objective 'contrastive' needs image and caption fields (data name captioned), the data "
                          f"has {describe(spec)}")
    return ContrastiveStep(cfg, modules["embedding"])
