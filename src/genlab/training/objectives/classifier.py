"""The classifier family's step: one phase minimising cross-entropy on labelled images.

It exists so that the metrics' feature network is trained, checkpointed and reloaded
by the same loop and run folders as every generative model. Its learning-rate schedule
is the loop's (configs/mnist_classifier.yaml uses train.lr_schedule.kind=cosine).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from genlab.config import EXAMPLE_FILES, ExampleRun, TrainConfig
from genlab.data.base import Batch, Spec, class_field, describe
from genlab.errors import ConfigError
from genlab.models.classifier import DigitClassifier
from genlab.registry import register_objective
from genlab.training.objectives.single import AdamObjectiveConfig, SingleNetworkStep
from genlab.training.step import LossOutput


@dataclass
class ClassifierObjectiveConfig(AdamObjectiveConfig):
    name: str = "classifier"
    family: ClassVar[str] = "classifier"
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "classifier",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512},
            {"name": "mnist_classifier", "channels": 4, "feature_dim": 16},
            {"name": "classifier"},
        ),
    )


class ClassifierStep(SingleNetworkStep):
    def loss(self, batch: Batch) -> LossOutput:
        """Cross-entropy of each head (one per target field), averaged; accuracy per head when there are several."""
        model = self.modules["classifier"]
        assert isinstance(model, DigitClassifier)
        heads = self.nets["classifier"](batch["image"]).float().split(list(model.head_sizes), dim=1)
        losses, stats = [], {}
        for target, logits in zip(model.targets, heads, strict=True):
            losses.append(F.cross_entropy(logits, batch[target]))
            stats[f"accuracy/{target}" if len(heads) > 1 else "accuracy"] = (
                (logits.argmax(1) == batch[target]).float().mean().detach()
            )
        return LossOutput(functools.reduce(operator.add, losses) / len(losses), stats)


@register_objective("classifier", ClassifierObjectiveConfig)
def build_classifier_step(
    cfg: ClassifierObjectiveConfig, modules: dict[str, nn.Module], spec: Spec, train: TrainConfig
) -> ClassifierStep:
    classifier = modules["classifier"]
    assert isinstance(classifier, DigitClassifier)
    missing = [t for t in classifier.targets if class_field(spec, key=t) is None]
    if missing or "image" not in spec:
        raise ConfigError(
            f"objective 'classifier' needs images and class fields {missing}, the data has {describe(spec)}"
        )
    return ClassifierStep("classifier", modules["classifier"], cfg)
