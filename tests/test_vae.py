"""VAE losses and likelihood estimators against independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genlab.gaussians import kl_divergence
from genlab.losses.vae import bernoulli_log_likelihood, gaussian_log_likelihood
from genlab.metrics.likelihood import elbo, evaluate_likelihood, iwae_log_likelihood
from genlab.models.vae import VAEMLP


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(7), torch.ones(7))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-5)


def test_bernoulli_log_likelihood_is_minus_summed_bce_on_grey_levels():
    logits, target = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    expected = -F.binary_cross_entropy(torch.sigmoid(logits), target, reduction="none").sum((1, 2, 3))
    assert torch.allclose(bernoulli_log_likelihood(logits, target), expected, atol=1e-4)


def test_bernoulli_log_likelihood_is_stable_and_has_the_bce_gradient_at_extreme_logits():
    """The hand-written BCE (a vectorised softplus) against PyTorch's, where naive forms overflow."""
    logits = (torch.tensor([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1e4]).view(1, 9) * torch.ones(2, 1))
    target = torch.rand(2, 9)
    ours_logits, ref_logits = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = bernoulli_log_likelihood(ours_logits, target)
    ref = -F.binary_cross_entropy_with_logits(ref_logits, target, reduction="none").sum(1)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-4)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(ours_logits.grad, ref_logits.grad)


def test_gaussian_log_likelihood_matches_torch_distributions():
    mean, target, log_sigma = torch.randn(3, 2, 3), torch.randn(3, 2, 3), torch.tensor([-0.3])
    expected = torch.distributions.Normal(mean, log_sigma.exp()).log_prob(target).sum((1, 2))
    assert torch.allclose(gaussian_log_likelihood(mean, log_sigma, target), expected, atol=1e-5)


@pytest.fixture(scope="module")
def vae_and_images():
    torch.manual_seed(0)
    vae = VAEMLP((1, 8, 8), hidden=32, latent_dim=3, likelihood="bernoulli").eval()
    return vae, torch.rand(6, 1, 8, 8) * 2 - 1


def test_k1_importance_weighted_estimate_equals_the_elbo_in_expectation(vae_and_images):
    vae, x = vae_and_images
    generator = torch.Generator().manual_seed(1)
    draws = 4000
    x_rep = x.repeat(draws, 1, 1, 1)
    k1 = iwae_log_likelihood(vae, x_rep, k=1, generator=generator).view(draws, -1)
    analytic = elbo(vae, x_rep, generator).view(draws, -1)
    # Same expectation; standard error of the difference of two means of `draws` samples.
    se = ((k1.var(0) + analytic.var(0)) / draws).sqrt()
    assert ((k1.mean(0) - analytic.mean(0)).abs() < 4 * se + 1e-3).all()


def test_importance_weighting_tightens_the_bound(vae_and_images):
    vae, x = vae_and_images
    estimates = [iwae_log_likelihood(vae, x, k, torch.Generator().manual_seed(2)).mean().item() for k in (1, 10, 1000)]
    assert estimates[0] < estimates[1] < estimates[2]


def test_chunking_does_not_change_the_estimate(vae_and_images):
    vae, x = vae_and_images
    whole = iwae_log_likelihood(vae, x, 60, torch.Generator().manual_seed(3), chunk=60)
    chunked = iwae_log_likelihood(vae, x, 60, torch.Generator().manual_seed(3), chunk=7)
    assert torch.allclose(whole, chunked, atol=1e-4)


def test_evaluate_likelihood_reports_nats_with_standard_errors(vae_and_images):
    vae, x = vae_and_images
    record = evaluate_likelihood(vae, x, k=50, batch_size=4)
    assert record["n_images"] == 6 and record["iw_k"] == 50
    assert record["iw_nll_nats"] < -record["elbo_nats"] + 1e-6 + 3 * record["elbo_se"]
    assert math.isfinite(record["iw_nll_se"]) and record["iw_nll_nats"] > 0
