"""Likelihoods in nats per image: exact for models that have one (PixelCNN), a bound for a VQ-VAE,
estimated for VAEs.

ELBO(x) = E_q[log p(x|z)] - KL(q || p) (closed form against N(0, I)), and the importance-
weighted estimate (Burda et al. 2016)
    log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i|x),  z_i ~ q(z|x),
a lower bound that tightens as k grows; k = 1 is the ELBO in expectation. Computed with
logsumexp over the k weights and in chunks of samples, so k in the thousands fits in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from genlab.gaussians import kl_divergence, log_normal_diag
from genlab.losses.vae import decoder_log_likelihood


@torch.no_grad()
def elbo(vae, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Single-sample ELBO per image. x: [N, C, H, W] in [-1, 1] -> [N] nats.

    The KL is analytic against N(0, I); against a fitted ex-post prior (the one the VAE then
    samples from) it is the one-sample estimate log q(z|x) - log p(z).
    """
    mu, logvar = vae.encode(x)
    eps = torch.randn(mu.shape, generator=generator).to(mu)
    z = mu + eps * (0.5 * logvar).exp()
    log_px = decoder_log_likelihood(vae.likelihood, vae.decode_params(z), x, vae.log_sigma)
    if vae.fitted_prior is not None:
        return log_px - (log_normal_diag(z, mu, logvar) - vae.log_prior(z))
    return log_px - kl_divergence(mu, logvar)


@torch.no_grad()
def iwae_log_likelihood(vae, x: Tensor, k: int, generator: torch.Generator | None = None, chunk: int = 100) -> Tensor:
    """Importance-weighted estimate of log p(x) with ``k`` samples. x: [N, ...] -> [N] nats."""
    mu, logvar = vae.encode(x)
    std = (0.5 * logvar).exp()
    # All noise drawn up front (k * N * D numbers are small) so ``chunk`` cannot change it.
    eps_all = torch.randn((k, *mu.shape), generator=generator).to(mu)
    log_weights = []
    for start in range(0, k, chunk):
        eps = eps_all[start : start + chunk]
        count = eps.shape[0]
        z = mu + eps * std  # [count, N, D]
        params = vae.decode_params(z.flatten(0, 1))  # [count * N, C, H, W]
        x_rep = x.expand(count, *x.shape).flatten(0, 1)
        log_px = decoder_log_likelihood(vae.likelihood, params, x_rep, vae.log_sigma).view(count, -1)
        log_weights.append(log_px + vae.log_prior(z) - log_normal_diag(z, mu, logvar))
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)


def evaluate_likelihood(vae, images: Tensor, k: int = 1000, batch_size: int = 100, seed: int = 0) -> dict[str, float]:
    """Test-set ELBO and importance-weighted NLL (mean nats per image, with standard errors).

    images: [N, C, H, W] float in [-1, 1], on the VAE's device.
    """
    generator = torch.Generator().manual_seed(seed)
    elbos, log_ps = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        elbos.append(elbo(vae, x, generator))
        log_ps.append(iwae_log_likelihood(vae, x, k, generator, chunk=max(1, min(k, 20_000 // x.shape[0]))))
    elbo_all, log_p_all = torch.cat(elbos).double(), torch.cat(log_ps).double()
    n = elbo_all.numel()
    return {
        "elbo_nats": elbo_all.mean().item(),
        "elbo_se": (elbo_all.std() / math.sqrt(n)).item(),
        "iw_nll_nats": -log_p_all.mean().item(),
        "iw_nll_se": (log_p_all.std() / math.sqrt(n)).item(),
        "iw_k": k,
        "n_images": n,
    }


@torch.no_grad()
def exact_likelihood(model, images: Tensor, labels: Tensor | None = None, batch_size: int = 100) -> dict[str, float]:
    """Test-set negative log-likelihood of a model with an exact ``log_prob`` (mean nats per image, its
    standard error, and bits per dimension: nats / (C*H*W ln 2)).

    images: [N, C, H, W] float in [-1, 1]; labels: [N] for a class-conditional model (then it is -log p(x | y)).
    """
    return _test_likelihood(model.log_prob, images, labels, batch_size, "")


@torch.no_grad()
def bound_likelihood(model, images: Tensor, labels: Tensor | None = None, batch_size: int = 100) -> dict[str, float]:
    """As :func:`exact_likelihood` for the bound of a model with ``log_prob_bound`` (a VQ-VAE's), its keys
    marked ``_bound``: the negative bound is above the true NLL."""
    return _test_likelihood(model.log_prob_bound, images, labels, batch_size, "_bound")


def _test_likelihood(
    log_prob: Callable[[Tensor, Tensor | None], Tensor],
    images: Tensor,
    labels: Tensor | None,
    batch_size: int,
    mark: str,
) -> dict[str, float]:
    log_ps = [
        log_prob(images[i : i + batch_size], None if labels is None else labels[i : i + batch_size])
        for i in range(0, images.shape[0], batch_size)
    ]
    log_p = torch.cat(log_ps).double()
    n, dims = log_p.numel(), images[0].numel()
    return {
        f"nll{mark}_nats": -log_p.mean().item(),
        f"nll{mark}_se": (log_p.std() / math.sqrt(n)).item(),
        f"bits_per_dim{mark}": -log_p.mean().item() / (dims * math.log(2)),
        "n_images": n,
    }
