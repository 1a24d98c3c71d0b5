"""What one evaluation computes, checked when it is built, and the defaults for a run.

Defaults: a model with a likelihood (a VAE, PixelCNN, a VQ-VAE) is scored by its test-set likelihood, any other
by sample quality; feature metrics use the digit classifier's feature space for digit data
and Inception-v3 otherwise (``sprites``, the attribute classifier's, on request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from genlab.errors import ConfigError
from genlab.metrics.registry import get_metric
from genlab.models.protocols import DecoderLikelihood, ExactLikelihood, LikelihoodBound, TrajectoryPredictor

FeatureSpace = Literal["inception", "mnist", "sprites"]
FEATURE_SPACES: tuple[str, ...] = get_args(FeatureSpace)
DIGIT_DATASETS = ("mnist",)  # where the digit classifier's feature space is the default
SPRITE_DATASETS = ("color_sprites", "captioned")  # where the sprites' attribute classifier's is (32-px colour)
ENCODER_METRICS = ("nll",)
SAMPLE_METRICS = ("fid", "kid", "is", "pr")
TRAJECTORY_METRICS = ("ade_fde",)


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation computes and how; an unknown metric or a bad value is a ConfigError here."""

    metrics: tuple[str, ...]
    n: int = 10_000  # generated samples (and at most this many test images for nll)
    features: FeatureSpace = "mnist"
    reference_split: Literal["train", "test"] = "train"
    seed: int = 0
    batch_size: int = 250  # feature extraction
    device: str = "cpu"
    inception_weights: str | None = None
    classifier: str | None = None  # classifier run folder; None: the newest digit classifier in the cache
    iw_k: int = 1000  # importance samples for nll

    def __post_init__(self) -> None:
        for name in self.metrics:
            get_metric(name)  # ConfigError for an unknown name
        if not 2 <= self.n <= 10**7:  # the top is far past any benchmark (50,000) and below what overflows torch
            raise ConfigError(f"--n must be in [2, 10000000], got {self.n}")
        if not 1 <= self.iw_k <= 10**6:
            raise ConfigError(f"--k is the number of importance samples, in [1, 1000000]; got {self.iw_k}")
        if self.features not in FEATURE_SPACES or self.reference_split not in ("train", "test"):
            raise ConfigError(
                f"features must be {', '.join(FEATURE_SPACES)} and the reference split train or test, "
                f"got {self.features!r} and {self.reference_split!r}"
            )
        if self.features == "sprites" and "is" in self.metrics:
            raise ConfigError(
                "the Inception Score needs one class distribution; the sprites' attribute classifier has one "
                "per attribute: leave 'is' out or use --features inception"
            )


def default_metrics(model: nn.Module) -> tuple[str, ...]:
    """nll for a model with a likelihood (a VAE, PixelCNN, a VQ-VAE), ade_fde for a trajectory predictor, else
    the sample metrics fid, kid, is, pr."""
    if isinstance(model, TrajectoryPredictor):
        return TRAJECTORY_METRICS
    likelihood = isinstance(model, (DecoderLikelihood, ExactLikelihood, LikelihoodBound))
    return ENCODER_METRICS if likelihood else SAMPLE_METRICS


def default_features(dataset: str) -> FeatureSpace:
    """The feature space for a run on ``dataset`` (a data config's name): a genlab classifier's where one knows
    the data (both ship in the zoo), else Inception's."""
    if dataset in DIGIT_DATASETS:
        return "mnist"
    return "sprites" if dataset in SPRITE_DATASETS else "inception"
