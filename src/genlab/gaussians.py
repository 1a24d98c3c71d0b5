"""Closed-form Gaussian densities and the KL of a diagonal Gaussian to N(0, I): pure functions that
models (a VAE's prior, a text GAN's conditioning augmentation) and losses (the ELBO) both use, so
they sit below both. Values in nats."""

from __future__ import annotations

import math

from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in closed form. mu, logvar: [N, D] -> [N]."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) over the last dim. [..., D] -> [...]."""
    return -0.5 * ((z - mu).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(dim=-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """log N(z; 0, I) over the last dim. [..., D] -> [...]."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)
