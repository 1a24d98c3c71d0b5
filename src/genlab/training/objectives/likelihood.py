"""Maximum likelihood for models whose forward pass is log p(x) (PixelCNN; Glow's dequantised bound):
one phase that minimises the negative log-likelihood of the batch, logged in nats per image and in bits
per dimension; a single network trained by Adam like the VAE's. Conditional models read the class label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from genlab.config import EXAMPLE_FILES, ExampleRun, TrainConfig
from genlab.data.base import Batch, Spec, sample_field
from genlab.discrete import bits_per_dim
from genlab.images import Grid
from genlab.models.protocols import ExactLikelihood, LatentSampler, eval_mode, is_conditional
from genlab.registry import register_objective
from genlab.training.objectives.single import AdamObjectiveConfig, SingleNetworkStep
from genlab.training.objectives.snapshots import class_grid
from genlab.training.step import LossOutput

SNAPSHOT_SAMPLES = 16  # drawn pixel by pixel: a pass of the network per pixel


@dataclass
class LikelihoodObjectiveConfig(AdamObjectiveConfig):
    name: str = "likelihood"
    family: ClassVar[str] = "likelihood"
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "pixelcnn_binarised_conditional",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512, "binarize": True, "image_size": 12},
            {"name": "pixelcnn", "levels": 2, "channels": 8, "layers": 2, "head_channels": 8, "conditional": True},
            {"name": "likelihood"},
            slow=True,  # 2.5-5 s each on EPYC-Zen4
        ),
        ExampleRun(
            "pixelcnn_colour",
            {"name": "sprites", "color": True, "image_size": 12, "n_train": 512, "n_test": 64},
            {"name": "pixelcnn", "levels": 8, "channels": 8, "layers": 2, "head_channels": 8},
            {"name": "likelihood"},
            slow=True,  # 2.5-5 s each on EPYC-Zen4
        ),
        ExampleRun(
            "glow",
            {"name": "sprites", "color": True, "image_size": 8, "n_train": 512, "n_test": 64},
            {"name": "glow", "levels": 2, "steps": 2, "hidden": 8},
            {"name": "likelihood"},
            slow=True,  # 2.5-5 s each on EPYC-Zen4
        ),
    )


class LikelihoodStep(SingleNetworkStep):
    def __init__(self, cfg: LikelihoodObjectiveConfig, model: nn.Module, image_key: str) -> None:
        super().__init__("model", model, cfg)
        self.image_key = image_key
        self.label_key = "label" if is_conditional(model) else None

    def loss(self, batch: Batch) -> LossOutput:
        """The mean negative log-likelihood per dimension (so the learning rate does not depend on the image
        size); the logs say it per image in nats and in bits per dimension."""
        x = batch[self.image_key]
        labels = batch[self.label_key] if self.label_key else None
        log_p = self.nets["model"](x, labels)
        dims = x[0].numel()
        return LossOutput(
            loss=-log_p.mean() / dims,
            stats={"nll_nats": -log_p.mean().detach(), "bits_per_dim": bits_per_dim(log_p.mean().detach(), dims)},
        )

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """A few samples (each a pass per pixel) and, for a conditional model, its class grid."""
        with eval_mode(self.modules["model"]) as model:
            assert isinstance(model, LatentSampler)
            grids = {"samples": Grid(model.sample(SNAPSHOT_SAMPLES, generator=torch.Generator().manual_seed(seed)), 4)}
            if is_conditional(model):
                grids["classes"] = class_grid(model, seed, columns=2)
        return grids


@register_objective("likelihood", LikelihoodObjectiveConfig)
def build_likelihood_step(
    cfg: LikelihoodObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig
) -> LikelihoodStep:
    model: nn.Module = modules["model"]
    assert isinstance(model, ExactLikelihood) and isinstance(model, LatentSampler)
    return LikelihoodStep(cfg, modules["model"], sample_field(spec))
