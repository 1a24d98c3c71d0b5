"""Disentanglement against ground-truth factors: MIG (Chen et al., NeurIPS 2018, "Isolating Sources
of Disentanglement in VAEs") and SAP (Kumar et al., ICLR 2018, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations").

Both are pure functions of latents ``[N, D]`` (a model's posterior means) and factors ``[N, K]``:

- **MIG**: for each factor v_k, the gap between the two largest mutual informations I(z_j; v_k)
  over latent dims j, divided by the entropy H(v_k); the mean over factors. 1: each factor is
  captured by exactly one dim; 0: no dim stands out. Estimated as in disentanglement_lib
  (Locatello et al. 2019): each latent dim discretised into 20 equal-width bins over its range,
  plug-in MI from the counts. Chen et al. instead estimate I(z_j; v_k) by sampling q(z | x) over
  the full dSprites grid; the binned estimate of the posterior means is the common stand-in.
- **SAP**: a score matrix S[j, k] of how well dim j alone predicts factor k: the R^2 of a linear
  fit (the squared correlation) for continuous factors; for categorical ones the test accuracy
  of a one-dimensional classifier (the majority class of each of 20 equal-width bins of z_j,
  fitted on the even-numbered examples, scored on the odd-numbered ones: Kumar et al.'s threshold
  classifier for more than two classes). SAP is the mean over factors of the gap between the
  two best dims.

Factors are categorical when they hold at most 20 distinct whole numbers (sprites' shape); the
others (scale, rotation, position) are discretised into 20 equal-width bins for MIG, as the
latents are. Entropies and informations are in nats; the scores are ratios and gaps, unitless.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch import Tensor

from genlab.data.base import Factors
from genlab.errors import ConfigError
from genlab.latent.encode import encode_dataset
from genlab.metrics.registry import register_metric

if TYPE_CHECKING:
    from genlab.metrics.evaluate import EvalContext

BINS = 20  # disentanglement_lib's default for MIG


def is_categorical(values: np.ndarray, max_values: int = BINS) -> bool:
    """Whether a factor column ``[N]`` holds at most ``max_values`` distinct whole numbers."""
    return bool(np.all(values == np.round(values))) and len(np.unique(values)) <= max_values


def histogram_codes(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin index ``[N]`` in 0..bins-1 of each value of a column ``[N]``, over equal-width bins of its range."""
    edges = np.histogram_bin_edges(values, bins)
    return np.digitize(values, edges[1:-1])  # the last edge's values fall into the last bin


def factor_codes(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """A factor column ``[N]`` as codes ``[N]``: its categories, or equal-width bins of a continuous factor."""
    if is_categorical(values, bins):
        return np.unique(values, return_inverse=True)[1].reshape(-1)
    return histogram_codes(values, bins)


def entropy(codes: np.ndarray) -> float:
    """Plug-in entropy in nats of integer codes ``[N]``."""
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information in nats of two integer code columns ``[N]``."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= len(a)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    present = joint > 0
    return float((joint[present] * np.log(joint[present] / outer[present])).sum())


def _checked(latents: Tensor | np.ndarray, factors: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z, v = np.asarray(latents, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if z.ndim != 2 or v.ndim != 2 or len(z) != len(v) or len(z) < 2:
        raise ConfigError(
            f"disentanglement scores need latents [N, D] and factors [N, K] of the same N >= 2, "
            f"got {z.shape} and {v.shape}"
        )
    if z.shape[1] < 2:
        raise ConfigError("disentanglement scores compare latent dimensions: the model needs at least 2")
    return z, v


def _top_gap(scores: np.ndarray) -> np.ndarray:
    """Per column of ``[D, K]``, the largest value minus the second largest: ``[K]``."""
    ranked = np.sort(scores, axis=0)[::-1]
    return ranked[0] - ranked[1]


def mig(
    latents: Tensor | np.ndarray, factors: Tensor | np.ndarray, names: Sequence[str] | None = None, bins: int = BINS
) -> dict:
    """Mutual information gap of latents ``[N, D]`` for factors ``[N, K]``; constant factors are skipped.

    Returns ``{"mig": mean over factors, "mig_per_factor": {name: gap / entropy}}``.
    """
    z, v = _checked(latents, factors)
    names = list(names) if names is not None else [str(k) for k in range(v.shape[1])]
    z_codes = [histogram_codes(z[:, j], bins) for j in range(z.shape[1])]
    per_factor: dict[str, float] = {}
    for k, name in enumerate(names):
        codes = factor_codes(v[:, k], bins)
        h = entropy(codes)
        if h == 0.0:
            continue
        info = np.array([[mutual_information(zc, codes)] for zc in z_codes])  # [D, 1]
        per_factor[name] = float(_top_gap(info)[0] / h)
    if not per_factor:
        raise ConfigError("every factor is constant in these examples: MIG needs factors that vary")
    return {"mig": float(np.mean(list(per_factor.values()))), "mig_per_factor": per_factor}


def _r2(z: np.ndarray, v: np.ndarray) -> float:
    """Squared correlation of two columns ``[N]`` (0 when either is constant)."""
    zc, vc = z - z.mean(), v - v.mean()
    denominator = (zc @ zc) * (vc @ vc)
    return float((zc @ vc) ** 2 / denominator) if denominator > 0 else 0.0


def _bin_classifier_accuracy(z: np.ndarray, labels: np.ndarray, bins: int = BINS) -> float:
    """Accuracy on the odd-numbered examples of a majority-class-per-bin classifier of z ``[N]``
    fitted on the even-numbered ones (alternating, so that sorted data splits evenly too)."""
    (z_fit, z_test), (y_fit, y_test) = (z[0::2], z[1::2]), (labels[0::2], labels[1::2])
    edges = np.histogram_bin_edges(z_fit, bins)
    fit_bins, test_bins = np.digitize(z_fit, edges[1:-1]), np.digitize(z_test, edges[1:-1])
    counts = np.zeros((bins, labels.max() + 1))
    np.add.at(counts, (fit_bins, y_fit), 1.0)
    fallback = np.bincount(y_fit).argmax()  # for bins no fitting example fell into
    majority = np.where(counts.sum(1) > 0, counts.argmax(1), fallback)
    return float((majority[test_bins] == y_test).mean())


def sap(
    latents: Tensor | np.ndarray, factors: Tensor | np.ndarray, names: Sequence[str] | None = None, bins: int = BINS
) -> dict:
    """Separated attribute predictability of latents ``[N, D]`` for factors ``[N, K]`` (N >= 4);
    constant factors are skipped.

    Returns ``{"sap": mean over factors, "sap_per_factor": {name: best score - second best}}``.
    """
    z, v = _checked(latents, factors)
    if len(z) < 4:
        raise ConfigError(f"SAP fits on half of the examples and scores on the other: give at least 4, got {len(z)}")
    names = list(names) if names is not None else [str(k) for k in range(v.shape[1])]
    per_factor: dict[str, float] = {}
    for k, name in enumerate(names):
        column = v[:, k]
        if np.all(column == column[0]):
            continue
        if is_categorical(column, bins):
            codes = factor_codes(column, bins)
            scores = np.array([[_bin_classifier_accuracy(z[:, j], codes, bins)] for j in range(z.shape[1])])
        else:
            scores = np.array([[_r2(z[:, j], column)] for j in range(z.shape[1])])
        per_factor[name] = float(_top_gap(scores)[0])
    if not per_factor:
        raise ConfigError("every factor is constant in these examples: SAP needs factors that vary")
    return {"sap": float(np.mean(list(per_factor.values()))), "sap_per_factor": per_factor}


# ----------------------------------------------------------------------------- registered metrics

_LATENTS: weakref.WeakKeyDictionary[EvalContext, tuple[Tensor, Tensor, list[str]]] = weakref.WeakKeyDictionary()


def factor_latents(ctx: EvalContext) -> tuple[Tensor, Tensor, list[str]]:
    """Posterior means ``[n, D]`` of the first n test examples, their factors ``[n, K]`` and the factor
    names; computed once per evaluation, shared by mig and sap."""
    if ctx not in _LATENTS:
        data = ctx.test_data
        field = data.spec.get("factors")
        if not isinstance(field, Factors):
            raise ConfigError(
                f"mig and sap compare latents with ground-truth factors of variation, and "
                f"{data.name} has none; evaluate a run trained on sprites (data.name=sprites)"
            )
        n = min(ctx.settings.n, len(data))
        latents = encode_dataset(ctx.model, data, n).cpu()
        ctx.notes.append(
            f"mig, sap: posterior means of the first {n} test images against their factors "
            f"({', '.join(field.names)}); {BINS} equal-width bins per latent dimension"
        )
        _LATENTS[ctx] = (latents, data["factors"][:n], list(field.names))
    return _LATENTS[ctx]


@register_metric("mig", needs=("encoder",))
def _mig(ctx: EvalContext) -> dict:
    latents, factors, names = factor_latents(ctx)
    return mig(latents, factors, names)


@register_metric("sap", needs=("encoder",))
def _sap(ctx: EvalContext) -> dict:
    latents, factors, names = factor_latents(ctx)
    return sap(latents, factors, names)
