"""The theory of Goodfellow et al. (2014), section 4, as numbers one can check on 1-D data.

For a fixed generator with density p_g the best discriminator is
``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` (Proposition 1), and at that discriminator the
value of the game is ``V(D*, G) = -log 4 + 2 JSD(p_data || p_g)`` (Theorem 1), so that
``V -> -log 4`` exactly when ``p_g -> p_data``.

Everything here is a pure function of densities tabulated on a uniform grid ``x: [M]``
(float64 numpy arrays, integrated with the trapezoid rule) or of discriminator logits on
samples. Values are in nats. The experiment that trains networks and checks these
identities lives in :mod:`genlab.experiments.theory`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

LOG4 = math.log(4.0)


def kde_density(samples: np.ndarray, x: np.ndarray, bandwidth: float | str = "scott") -> np.ndarray:
    """Gaussian kernel density estimate of 1-D ``samples: [N]`` evaluated at ``x: [M]``.

    ``bandwidth`` is scipy's ``bw_method``: "scott" (default, h = std * N^(-1/5)),
    "silverman", or a float factor multiplying the samples' standard deviation.
    Returns p_g: [M], non-negative, integrating to 1 over the real line.
    """
    kde = stats.gaussian_kde(np.asarray(samples, dtype=np.float64), bw_method=bandwidth)
    return kde(np.asarray(x, dtype=np.float64))


def pushforward_density(x: np.ndarray, g_of_z: np.ndarray, slope: np.ndarray, p_z: np.ndarray) -> np.ndarray:
    """Exact density of x = G(z) for a strictly increasing 1-D map G, at the points ``x: [M]``.

    g_of_z, slope, p_z: G(z), G'(z) and the noise density p_z(z) on a fine increasing grid of z,
    each [K]. Change of variables: p_g(G(z)) = p_z(z) / G'(z), linearly interpolated in x
    and 0 outside the range G covers on the grid.
    """
    return np.interp(x, g_of_z, p_z / slope, left=0.0, right=0.0)


def optimal_logit(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """The logit of D*(x) = p_data / (p_data + p_g), i.e. log p_data - log p_g, elementwise.

    ±inf where one density vanishes; 0 (D* = 1/2) where both do. Logits rather than
    probabilities because D* rounds to exactly 1 in float64 long before p_g is 0, and
    log(1 - D*) would then be -inf where p_g still carries mass.
    """
    with np.errstate(divide="ignore"):
        logit = np.log(p_data) - np.log(p_g)
    return np.where((p_data == 0) & (p_g == 0), 0.0, logit)


def value_integral(x: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, logits: np.ndarray) -> float:
    """V(D, G) = ∫ p_data log D + p_g log(1 - D) dx by the trapezoid rule on the grid ``x``.

    logits: D's logit on the grid, [M], possibly ±inf. log D = -softplus(-logit) and
    log(1 - D) = -softplus(logit) stay finite where sigmoid rounds to 0 or 1, and a
    density that is exactly 0 contributes 0 (0 · log 0 = 0).
    """
    with np.errstate(invalid="ignore"):
        log_d = -np.logaddexp(0.0, -logits)
        log_not_d = -np.logaddexp(0.0, logits)
        integrand = np.where(p_data > 0, p_data * log_d, 0.0) + np.where(p_g > 0, p_g * log_not_d, 0.0)
    return float(integrate.trapezoid(integrand, x))


def jsd_integral(x: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """JSD(p || q) = ½ KL(p || m) + ½ KL(q || m), m = (p + q)/2, by the trapezoid rule.

    In nats: 0 for identical densities, log 2 for densities with disjoint supports.
    """
    m = 0.5 * (p + q)
    # p log(p/m) with 0 log 0 = 0; where m = 0 both p and q are 0 and the term is 0.
    log_ratio_p = np.log(np.divide(p, m, out=np.ones_like(m), where=p > 0))
    log_ratio_q = np.log(np.divide(q, m, out=np.ones_like(m), where=q > 0))
    integrand = 0.5 * (p * log_ratio_p + q * log_ratio_q)
    return float(integrate.trapezoid(integrand, x))


def theorem_value(jsd: float) -> float:
    """C(G) = max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1)."""
    return -LOG4 + 2.0 * jsd


def bulk_mask(x: np.ndarray, density: np.ndarray, mass: float = 0.98) -> np.ndarray:
    """The highest-density region of ``density`` holding ``mass`` of its probability, as a bool mask [M].

    Unlike a central interval, it leaves out the near-empty gap between the modes of a
    mixture, where neither player sees samples and D is not determined by the data.
    """
    dx = np.gradient(x)
    weights = density * dx
    order = np.argsort(-density, kind="stable")
    cumulative = np.cumsum(weights[order]) / weights.sum()
    keep = order[: int(np.searchsorted(cumulative, mass)) + 1]
    mask = np.zeros(x.shape, dtype=bool)
    mask[keep] = True
    return mask
