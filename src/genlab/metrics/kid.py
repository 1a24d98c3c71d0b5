"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the cubic
polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets.

Computed by torch-fidelity's port of the MMD-GAN reference code. Unlike FID it is
unbiased, so it is the better number for small sample counts. Features are cast to
float64 first: MMD^2 is a small difference of large kernel sums, and in float32 (what
torch-fidelity's own pipeline uses) it loses about three significant digits.
"""

from __future__ import annotations

from torch import Tensor
from torch_fidelity.metric_kid import kid_features_to_metric

KEY_KID_MEAN = "kid_mean"
KEY_KID_STD = "kid_std"


def kid(
    features_1: Tensor,
    features_2: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
) -> dict[str, float]:
    """KID between ``features_1: [N1, D]`` and ``features_2: [N2, D]``.

    ``subset_size`` is clipped to the smaller set so that small evaluations still run;
    the subsets are drawn with ``numpy.random.RandomState(seed)``.
    """
    size = min(subset_size, features_1.shape[0], features_2.shape[0])
    value = kid_features_to_metric(
        features_1.detach().cpu().double(),
        features_2.detach().cpu().double(),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,  # 1 / D
        kid_kernel_poly_coef0=1,
        rng_seed=seed,
        verbose=False,
    )
    return {
        KEY_KID_MEAN: value["kernel_inception_distance_mean"],
        KEY_KID_STD: value["kernel_inception_distance_std"],
    }
