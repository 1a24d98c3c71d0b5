"""Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

features -> statistics -> value, through torch-fidelity's port of the TTUR reference
code, so that numbers match the published implementation. The feature space is the
caller's choice (Inception pool3, the MNIST classifier's penultimate layer, ...); the
result key stays ``"fid"`` and the feature extractor is recorded beside it.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from torch import Tensor
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

KEY_FID = "fid"


class FIDStatistics(TypedDict):
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64, the unbiased (N - 1) sample covariance


def fid_statistics(features: Tensor) -> FIDStatistics:
    """Mean and covariance of ``features: [N, D]`` (any float dtype, any device)."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got {tuple(features.shape)}")
    # float64 throughout: torch-fidelity requires equal dtypes on both sides, and the
    # covariance of float32 features loses digits that FID near 0 depends on.
    return fid_features_to_statistics(features.detach().cpu().double())


def fid_from_statistics(stats_1: FIDStatistics, stats_2: FIDStatistics) -> dict[str, float]:
    """``{"fid": ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))}``."""
    value = fid_statistics_to_metric(stats_1, stats_2, verbose=False)
    return {KEY_FID: value["frechet_inception_distance"]}


def fid(features_1: Tensor, features_2: Tensor) -> dict[str, float]:
    """FID between ``features_1: [N1, D]`` and ``features_2: [N2, D]``."""
    return fid_from_statistics(fid_statistics(features_1), fid_statistics(features_2))


def fid_small_sample_warning(n_generated: int, n_reference: int, dim: int) -> str | None:
    """Say when FID is computed from too few samples to be comparable.

    The estimator is biased upwards and the bias grows as N shrinks (Chong & Forsyth
    2020); with N <= D the covariance is singular. 10,000 is the common minimum,
    50,000 the Inception convention.
    """
    n = min(n_generated, n_reference)
    if n <= dim:
        return (
            f"FID from {n} samples in a {dim}-dimensional feature space: the covariance is "
            f"singular and the value is not meaningful; use at least 10,000 samples"
        )
    if n < 10_000:
        return (
            f"FID from {n} samples is biased upwards (the bias grows as N shrinks); "
            f"compare only values computed with the same N, and use >= 10,000 samples to report"
        )
    return None
