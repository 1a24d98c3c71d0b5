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

from genlab.config import ExampleRun, TrainConfig
from genlab.data.base import Batch, Image, Spec, Tokens, describe
from genlab.errors import ConfigError
from genlab.losses.contrastive import identical_rows, symmetric_info_nce
from genlab.registry import register_objective
from genlab.training.objectives.single import AdamObjectiveConfig, SingleNetworkStep
from genlab.training.step import LossOutput


@dataclass
class ContrastiveObjectiveConfig(AdamObjectiveConfig):
    name: str = "contrastive"
    family: ClassVar[str] = "embedding"
    # Captions of coloured sprites into a small GRU and image encoder, the learnt logit scale with them.
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "contrastive",
            {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 512, "n_test": 64}},
            {"name": "text_embedding", "text_dim": 8, "image_channels": 4, "embed_dim": 8},
            {"name": "contrastive", "lr": 3e-3},
        ),
    )


class ContrastiveStep(SingleNetworkStep):
    def loss(self, batch: Batch) -> LossOutput:
        """Symmetric InfoNCE with identical captions as each other's positives; text->image top-1 accuracy."""
        text, images, scale = (t.float() for t in self.nets["embedding"](batch["caption"], batch["image"]))
        positives = identical_rows(batch["caption"])
        nearest = (text @ images.T).argmax(dim=1)
        retrieved = positives[torch.arange(len(nearest), device=nearest.device), nearest]
        return LossOutput(
            symmetric_info_nce(text, images, scale, positives),
            {"text->image top-1": retrieved.float().mean(), "logit_scale": scale.detach()},
        )


@register_objective("contrastive", ContrastiveObjectiveConfig)
def build_contrastive_step(
    cfg: ContrastiveObjectiveConfig, modules: dict[str, nn.Module], spec: Spec, train: TrainConfig
) -> ContrastiveStep:
    if not (isinstance(spec.get("image"), Image) and isinstance(spec.get("caption"), Tokens)):
        raise ConfigError(
            f"objective 'contrastive' needs image and caption fields (data name captioned), the data "
            f"has {describe(spec)}"
        )
    return ContrastiveStep("embedding", modules["embedding"], cfg)
