"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), mean and std
over splits, through torch-fidelity.

Fed with the MNIST classifier's logits it is the "MNIST score" of the GAN literature
(at most 10); with Inception's unbiased logits it is the usual IS (at most 1008).
"""

from __future__ import annotations

from torch import Tensor
from torch_fidelity.metric_isc import isc_features_to_metric

KEY_IS_MEAN = "is_mean"
KEY_IS_STD = "is_std"


def inception_score(logits: Tensor, splits: int = 10, seed: int = 2020) -> dict[str, float]:
    """IS of classifier ``logits: [N, K]`` (unnormalised), shuffled with ``seed``."""
    if logits.dim() != 2 or logits.shape[0] < splits:
        raise ValueError(f"need logits [N >= {splits}, K], got {tuple(logits.shape)}")
    value = isc_features_to_metric(logits.detach().cpu(), splits=splits, shuffle=True, rng_seed=seed)
    return {KEY_IS_MEAN: value["inception_score_mean"], KEY_IS_STD: value["inception_score_std"]}
