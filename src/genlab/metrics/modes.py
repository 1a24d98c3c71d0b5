"""Mode coverage on 2-D Gaussian mixtures, the protocol of VEEGAN (Srivastava et al. 2017) and
PacGAN (Lin et al. 2018, Table 1; released code ``pacgan/extensions.py``, ``MetricLogger``).

For 2,500 generated samples and a mixture of K isotropic Gaussians of common std sigma:

- each sample is assigned to its nearest mode centre (Euclidean distance, which for a common
  sigma orders the modes as PacGAN's std-normalised distance does);
- a sample is *high quality* when that distance is below 3 sigma;
- a mode is *covered* when at least one high-quality sample is assigned to it (PacGAN counts
  the non-zero entries of the histogram of high-quality samples over modes);
- ``high_quality`` is the fraction of all samples that are high quality;
- ``kl_to_uniform`` is KL(q || uniform) in nats, q that histogram normalised: 0 when the
  good samples spread evenly, log K when they all sit on one mode; nan when there are none.

The histogram and its summary are :mod:`genlab.metrics.coverage`'s, shared with the
classifier-judged coverage of (Stacked) MNIST, so both report the same keys.
Published reference for a vanilla GAN (PacGAN Table 1, mean of 10 runs): 6.3 of 8 modes on
the ring, 17.3 of 25 on the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from genlab.metrics import coverage

EVAL_SAMPLES = 2500  # generated samples per evaluation in the protocol
THRESHOLD = 3.0  # high quality: within this many sigma of the nearest mode
KEY_HIGH_QUALITY = "high_quality"


def nearest_modes(samples: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index int64 [N] of each sample's nearest centre and the distance float64 [N] to it.

    samples: [N, D]; centers: [K, D]; anything ``np.asarray`` takes, CPU tensors included.
    """
    samples = np.asarray(samples, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    distances = np.linalg.norm(samples[:, None, :] - centers[None, :, :], axis=2)  # [N, K]
    index = distances.argmin(axis=1)
    return index, distances[np.arange(len(samples)), index]


def mixture_mode_coverage(
    samples: np.ndarray, centers: np.ndarray, sigma: float, threshold: float = THRESHOLD
) -> dict[str, float]:
    """The PacGAN summary of ``samples: [N, D]`` against modes ``centers: [K, D]`` of std ``sigma``.

    Returns {"modes_covered", "num_modes", "kl_to_uniform", "high_quality"}; see the module docstring.
    """
    index, distance = nearest_modes(samples, centers)
    good = distance < threshold * sigma
    histogram = coverage.mode_histogram(torch.from_numpy(index[good]), len(centers))
    if good.any():
        summary = coverage.mode_coverage(histogram)
    else:  # nothing near any mode: nothing covered, and no distribution over modes to compare
        summary = {
            coverage.KEY_MODES_COVERED: 0,
            coverage.KEY_NUM_MODES: len(centers),
            coverage.KEY_KL_UNIFORM: math.nan,
        }
    return {**summary, KEY_HIGH_QUALITY: float(good.mean())}


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof = 1, over sqrt n); the error is nan for one value."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("mean_and_stderr needs at least one value")
    stderr = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else math.nan
    return float(array.mean()), stderr
