"""The VAEs' ex-post Gaussian-mixture prior: the fit, its density and samples, and how training,
export and the likelihood estimates use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

import genlab
from genlab.config import config_from_dict
from genlab.data import load_dataset
from genlab.images import to_model
from genlab.metrics.likelihood import elbo, evaluate_likelihood
from genlab.models.priors import GaussianMixturePrior
from genlab.runs import checkpoint as ckpt

TRUE_MEANS = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])


def two_clusters(n: int = 3000) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    first = TRUE_MEANS[0] + 0.5 * torch.randn(n // 4, 2, generator=g)  # a quarter of the points
    second = TRUE_MEANS[1] + torch.randn(n - n // 4, 2, generator=g) @ torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    return torch.cat([first, second])


def test_fit_recovers_a_known_mixture():
    prior = GaussianMixturePrior(2, 2)
    prior.fit(two_clusters())
    order = prior.means[:, 0].argsort()
    assert torch.allclose(prior.means[order], TRUE_MEANS, atol=0.1)
    assert torch.allclose(prior.weights[order], torch.tensor([0.25, 0.75]), atol=0.02)
    assert bool(prior.fitted)


def test_density_and_samples_follow_the_mixture():
    prior = GaussianMixturePrior(2, 2)
    prior.fit(two_clusters())
    reference = MixtureSameFamily(Categorical(prior.weights), MultivariateNormal(prior.means, scale_tril=prior.scale_tril))
    z = torch.randn(50, 2) * 3
    assert torch.allclose(prior.log_prob(z), reference.log_prob(z), atol=1e-4)
    a = prior.sample(20_000, torch.Generator().manual_seed(1))
    assert torch.equal(a, prior.sample(20_000, torch.Generator().manual_seed(1)))  # a seed gives the same latents
    assert (a[:, 0] < 0).float().mean().item() == pytest.approx(0.25, abs=0.02)
    assert torch.allclose(a.mean(0), reference.mean, atol=0.05)


def vae_config(out_dir: Path, **train) -> genlab.Config:
    return config_from_dict({
        "name": "tiny", "data": {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
        "model": {"name": "conv_vae", "latent_dim": 4, "channels": 8, "prior_components": 3},
        "objective": {"name": "vae"},
        "train": {"kimg": 1.024, "batch_size": 32, "out_dir": str(out_dir), "log_every_kimg": 0.256, "snapshot_every_kimg": 0,
                  "checkpoint_every_kimg": 0.512, "progress_bar": False, "tensorboard": False, **train},
    })


def test_a_trained_vae_exports_a_prior_fitted_to_its_codes(tmp_path):
    config = vae_config(tmp_path)
    vae = genlab.load(genlab.train(config))
    assert vae.fitted_prior is not None
    images = to_model(load_dataset(config.data, "train")["image"])
    with torch.no_grad():
        mu, logvar = vae.encode(images)
        codes = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
        z = vae.latents(4000, torch.Generator().manual_seed(0))
    # The prior's samples sit where the training codes (draws of q(z|x)) are, not in N(0, I)'s ball.
    assert torch.allclose(z.mean(0), codes.mean(0), atol=0.1 * codes.std(0).max().item())
    assert torch.allclose(z.std(0), codes.std(0), rtol=0.15)
    assert torch.equal(vae.sample(8, torch.Generator().manual_seed(3)), vae.decode(vae.latents(8, torch.Generator().manual_seed(3))))


def test_refitting_at_checkpoints_leaves_training_and_resume_exact(tmp_path):
    straight = genlab.train(vae_config(tmp_path / "a"))
    stopped = genlab.train(vae_config(tmp_path / "b"), stop_after_kimg=0.416)  # an extra fit off the cadence
    genlab.train(resume=stopped)
    a = load_file(ckpt.latest_checkpoint(straight) / ckpt.MODULES_FILE)
    b = load_file(ckpt.latest_checkpoint(stopped) / ckpt.MODULES_FILE)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_likelihood_estimates_use_the_fitted_prior(tmp_path):
    config = vae_config(tmp_path)
    vae = genlab.load(genlab.train(config))
    x = to_model(load_dataset(config.data, "test")["image"])[:32]
    fitted = evaluate_likelihood(vae, x, k=50)
    vae.prior.fitted.fill_(False)  # the same weights under N(0, I)
    standard = evaluate_likelihood(vae, x, k=50)
    assert fitted["iw_nll_nats"] != standard["iw_nll_nats"]
    # The mixture was fitted to the codes, so it explains them better than N(0, I).
    assert fitted["iw_nll_nats"] < standard["iw_nll_nats"]
    assert torch.isfinite(elbo(vae, x)).all()
