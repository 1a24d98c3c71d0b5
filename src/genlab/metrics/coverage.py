"""Class and mode coverage of generated images, judged by the digit classifier.

MNIST: the histogram of predicted digits, how many of the 10 classes appear, and
KL(p_generated || uniform). Stacked MNIST (Metz et al. 2017; protocol of VEEGAN,
Srivastava et al. 2017, and PacGAN, Lin et al. 2018): three digits as the R, G and B
channels give 1000 modes; each channel is classified separately and the triple is the
mode. The KL direction follows those papers: the generated mode distribution against
the uniform target. (``modes.py`` is the same protocol on 2-D Gaussian mixtures, where a
mode is the nearest centre instead of a classifier's prediction.)
"""

from __future__ import annotations

import torch
from scipy.stats import entropy
from torch import Tensor

KEY_MODES_COVERED = "modes_covered"
KEY_NUM_MODES = "num_modes"
KEY_KL_UNIFORM = "kl_to_uniform"


def channel_modes(channel_classes: Tensor, classes: int) -> Tensor:
    """The mode index ``[N]`` of per-channel classes ``[N, C]`` in ``0..classes-1``: the channels read as the
    digits of a base-``classes`` number, the first most significant (Stacked MNIST: ``100 r + 10 g + b``)."""
    weights = classes ** torch.arange(channel_classes.shape[1] - 1, -1, -1, device=channel_classes.device)
    return channel_classes.long() @ weights


def mode_histogram(modes: Tensor, num_modes: int) -> Tensor:
    """Counts int64 ``[num_modes]`` of the mode index ``modes: [N]`` (int) of each sample."""
    if modes.numel() and (modes.min() < 0 or modes.max() >= num_modes):
        raise ValueError(f"mode indices must lie in [0, {num_modes}), got {int(modes.min())}..{int(modes.max())}")
    return torch.bincount(modes.long().flatten(), minlength=num_modes)


def mode_coverage(histogram: Tensor, min_count: int = 1) -> dict[str, float]:
    """Modes with at least ``min_count`` samples, and KL(p_generated || uniform) in nats.

    histogram: ``[K]`` counts of samples per mode (see :func:`mode_histogram`).
    """
    counts = histogram.double()
    if counts.sum() <= 0:
        raise ValueError("the histogram is empty")
    k = counts.numel()
    return {
        KEY_MODES_COVERED: int((counts >= min_count).sum()),
        KEY_NUM_MODES: k,
        # scipy normalises the counts and treats 0 log 0 as 0.
        KEY_KL_UNIFORM: float(entropy(counts.numpy(), torch.full((k,), 1.0 / k).numpy())),
    }
