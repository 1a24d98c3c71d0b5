"""Metric name -> the function that computes it and what it needs: ``@register_metric``.

A metric is a function of an :class:`~genlab.metrics.evaluate.EvalContext` returning its
results under constant keys. Its ``needs`` name what the run must offer (see ``NEEDS``), so
that an evaluation refuses a metric that cannot apply before it computes anything.

The table is a :class:`genlab.registry.Registry` like the models': every module of
:mod:`genlab.metrics` is imported on its first lookup, so a new metric is a new module there
holding one decorated function; nothing else needs editing.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genlab.errors import ConfigError
from genlab.models.protocols import (
    DecoderLikelihood,
    Encoder,
    ExactLikelihood,
    LatentSampler,
    LikelihoodBound,
    TrajectoryPredictor,
    is_conditional,
)
from genlab.registry import Registry

# A metric takes a genlab.metrics.evaluate.EvalContext. Typed as Any: the context is built
# from the settings, which check their metric names here, so naming it would close a circle.
MetricFn = Callable[[Any], dict]


@dataclass(frozen=True)
class Need:
    """Something a metric requires: how to say it, and whether a run has it."""

    description: str  # completes "metric 'nll' needs ..."
    # Model capabilities are tested; for networks, building them is the test (a missing
    # file raises its own DataError saying what to do).
    met: Callable[[Any], bool]  # of an EvalContext


# Checked in this order: the model's capabilities first, as they cost nothing.
NEEDS: dict[str, Need] = {
    "samples": Need("a model that generates samples (a VAE or GAN)", lambda ctx: isinstance(ctx.model, LatentSampler)),
    "encoder": Need(
        "a model with an encoder, such as a VAE (a GAN has none; for its likelihood use parzen)",
        lambda ctx: isinstance(ctx.model, Encoder),
    ),
    "likelihood": Need(
        "a model with a likelihood: exact (PixelCNN), a bound (VQ-VAE) or a decoder p(x | z) (a VAE); "
        "for a GAN's use parzen",
        lambda ctx: isinstance(ctx.model, (DecoderLikelihood, ExactLikelihood, LikelihoodBound)),
    ),
    "labels": Need("a class-conditional model", lambda ctx: is_conditional(ctx.model)),
    "trajectories": Need(
        "a trajectory predictor (social_gan) on trajectory data", lambda ctx: isinstance(ctx.model, TrajectoryPredictor)
    ),
    "classifier": Need("the digit classifier", lambda ctx: ctx.classifier is not None),
    "features": Need("the chosen feature space's network", lambda ctx: ctx.extractor is not None),
}


@dataclass(frozen=True)
class Metric:
    name: str
    compute: MetricFn
    needs: tuple[str, ...]


METRICS: Registry[Metric] = Registry("metric", "genlab.metrics")


def register_metric(name: str, needs: tuple[str, ...] = ()) -> Callable[[MetricFn], MetricFn]:
    """Register ``compute(ctx) -> dict`` as metric ``name``, requiring ``needs`` (keys of NEEDS)."""
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"metric {name!r}: unknown needs {unknown}; choose from {', '.join(NEEDS)}")

    def decorator(compute: MetricFn) -> MetricFn:
        METRICS.add(name, Metric(name, compute, tuple(needs)))
        return compute

    return decorator


def get_metric(name: str) -> Metric:
    """The metric ``name``; ConfigError naming the closest one when there is none."""
    names = metric_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown metric {name!r}{hint}; choose from {', '.join(names)}")
    return METRICS.get(name)


def metric_names() -> list[str]:
    """Every metric: evaluate.py's general ones first, then each other module's, in the order they are defined.

    Sorted by module rather than kept in registration order, which depends on what was imported first.
    """
    by_module = sorted(
        METRICS.entries(), key=lambda m: (m.compute.__module__ != "genlab.metrics.evaluate", m.compute.__module__)
    )
    return [m.name for m in by_module]
