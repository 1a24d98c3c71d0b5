"""VQ-VAE: nearest-code quantisation with straight-through gradients, the codebook's moving averages and
restarts, two stages that each train only their part, a normalised prior, a bound below the exact
likelihood, and a trained run that reports its bound and samples."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from genlab.errors import ConfigError
from genlab.models.protocols import Encoder, LatentSampler, LikelihoodBound, Staged
from genlab.models.vqvae import VQVAE, Codes, Quantiser


def tiny(shape=(1, 4, 8), levels=2, codes=3, classes=0, autoencoder_images=100) -> VQVAE:
    """Images of ``shape`` onto a 1 x 2 grid of ``codes`` codes (downsample 2), weights moved off their init."""
    torch.manual_seed(0)
    model = VQVAE(shape, levels, codes, code_dim=2, channels=4, downsample=2, res_blocks=1, prior_channels=4,
                  prior_layers=2, num_classes=classes, autoencoder_images=autoencoder_images, decay=0.9,
                  restart_below=0.1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.quantiser.codebook.normal_()
    return model


def test_quantisation_takes_the_nearest_code_and_passes_gradients_straight_through():
    q = Quantiser(codes=3, dim=2, decay=0.9, restart_below=0.1).eval()
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]]))
    z = torch.tensor([[0.9, 1.2], [-1.5, 0.1], [0.1, -0.2]]).T.reshape(1, 2, 1, 3).requires_grad_()
    e, indices, commitment = q(z)
    assert indices.tolist() == [[[1, 2, 0]]]
    torch.testing.assert_close(e.detach(), q.lookup(indices))
    (e * torch.arange(6.0).view(1, 2, 1, 3)).sum().backward()
    torch.testing.assert_close(z.grad, torch.arange(6.0).view(1, 2, 1, 3))  # d e / d z = identity
    expected = sum((a - b) ** 2 for a, b in [(0.9, 1), (1.2, 1), (-1.5, -2), (0.1, 0), (0.1, 0), (-0.2, 0)])
    assert commitment.item() == pytest.approx(expected)


def test_the_codebook_moves_to_the_mean_of_its_vectors_and_dead_codes_restart_on_data():
    torch.manual_seed(0)
    q = Quantiser(codes=4, dim=2, decay=0.0, restart_below=0.5).train()  # decay 0: the averages are this batch's
    z = torch.cat([torch.randn(2, 50) * 0.1 + 3, torch.randn(2, 50) * 0.1 - 3], dim=1).reshape(1, 2, 10, 10)
    q(z)  # the first step: every code starts on a vector of the batch, then moves to the mean of its cluster's
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    assert all((flat - code).norm(dim=1).min() < 0.3 for code in q.codebook)  # not at the zeros it was built with
    q.codebook.copy_(torch.tensor([[3.0, 3.0], [-3.0, -3.0], [50.0, 50.0], [60.0, 60.0]]))
    q(z)
    torch.testing.assert_close(q.codebook[0], flat[:50].mean(dim=0), atol=1e-3, rtol=0)  # Laplace smoothing: ~1e-5
    torch.testing.assert_close(q.codebook[1], flat[50:].mean(dim=0), atol=1e-3, rtol=0)
    for code in q.codebook[2:]:  # unused: restarted on an encoder output of the batch
        assert (flat - code).abs().sum(dim=1).min() == 0
    before = q.codebook.clone()
    q.eval()(z)
    assert torch.equal(q.codebook, before)  # no update outside training


def test_each_stage_trains_only_its_part_and_the_stage_follows_the_images_seen():
    model = tiny(classes=2, autoencoder_images=100).train()
    model.set_progress(0)
    model(torch.rand(4, 1, 4, 8).round() * 2 - 1)  # past the first step's initialisation from data
    assert isinstance(model, Staged) and isinstance(model, LatentSampler) and isinstance(model, LikelihoodBound)
    assert isinstance(model, Encoder)
    x, labels = torch.rand(4, 1, 4, 8).round() * 2 - 1, torch.tensor([0, 1, 0, 1])
    parts = {"encoder": model.encoder, "decoder": model.decoder, "prior": model.prior}
    assert {id(p) for p in model.autoencoder_parameters()} >= {id(p) for p in model.encoder.parameters()}
    for images_seen, trained in [(99, {"encoder", "decoder"}), (100, {"prior"})]:
        model.zero_grad(set_to_none=True)
        model.set_progress(images_seen)
        codebook = model.quantiser.codebook.clone()
        out = model(x, labels)
        loss = -out.log_px.sum() + out.commitment.sum() if out.log_prior is None else -out.log_prior.sum()
        loss.backward()
        got = {name for name, part in parts.items() if any(p.grad is not None for p in part.parameters())}
        assert got == trained
        assert torch.equal(model.quantiser.codebook, codebook) == (images_seen >= 100)  # frozen in stage 2


def test_the_prior_is_normalised_and_the_bound_is_below_the_exact_likelihood():
    """Summed over the K^2 code grids: the prior's probabilities add to 1, and log p(x) (exact, by
    enumeration) is at least log p(x | z(x)) + log p(z(x))."""
    model = tiny(codes=3).eval()
    model.set_progress(100)  # the second stage: the bound is under the learned prior
    grids = torch.tensor(list(itertools.product(range(3), repeat=2))).view(-1, 1, 2)
    with torch.no_grad():
        log_prior = model.prior(grids)
        assert log_prior.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        x = torch.rand(3, 1, 4, 8).round() * 2 - 1
        bound = model.log_prob_bound(x)
        logits = model.decoder_logits(model.decoder_input(Codes(grids, None)))  # [9, 1, 2, 4, 8]
        from genlab.discrete import categorical_log_prob

        log_px_z = torch.stack([categorical_log_prob(logits, image.expand(9, -1, -1, -1)) for image in x])  # [3, 9]
        exact = torch.logsumexp(log_px_z + log_prior, dim=1)
    assert bool((bound <= exact + 1e-5).all())


def test_before_the_prior_trains_the_bound_uses_the_uniform_prior_and_labels_are_required():
    model = tiny(codes=3, classes=2).eval()
    x, labels = torch.rand(3, 1, 4, 8).round() * 2 - 1, torch.tensor([0, 1, 0])
    from genlab.discrete import categorical_log_prob

    log_px = categorical_log_prob(model.decoder_logits(model.decoder_input(model.codes(x))), x)
    torch.testing.assert_close(model.log_prob_bound(x, labels), log_px - 2 * math.log(3))  # stage 0: 2 positions
    model.set_progress(100)
    torch.testing.assert_close(model.log_prob_bound(x, labels), log_px + model.log_prior(model.codes(x), labels))
    with pytest.raises(ConfigError, match="class labels"):
        model.log_prob_bound(x)


def test_sampling_draws_each_code_by_the_inverse_cdf_and_decodes_its_mean_image():
    model = tiny(shape=(1, 4, 4), codes=3).eval()  # a 1 x 1 grid: the prior is one categorical
    with torch.no_grad():
        p = model.prior(torch.arange(3).view(3, 1, 1)).exp()
        z = model.latents(20_000, generator=torch.Generator().manual_seed(0))
        u = torch.special.ndtr(z).view(-1, 1, 1)
        drawn = model.prior.sample(u, None).flatten()
        images = model.decode(z[:6])
    assert torch.allclose(torch.bincount(drawn, minlength=3) / 20_000, p, atol=0.01)
    torch.testing.assert_close(images, model.mean_image(Codes(drawn[:6].view(6, 1, 1), None)))
    assert images.min() >= -1 and images.max() <= 1


def test_encoding_gives_the_noise_that_draws_the_images_codes():
    model = tiny(shape=(1, 8, 8), codes=5, classes=2).eval()  # a 2 x 2 grid
    x, labels = torch.rand(16, 1, 8, 8).round() * 2 - 1, torch.arange(16) % 2
    z, logvar = model.encode(x, labels)
    assert z.shape == (16, 4) and bool((logvar < -20).all())
    u = torch.special.ndtr(z).view(-1, 2, 2)
    assert torch.equal(model.prior.sample(u, labels), model.codes(x).bottom)
    torch.testing.assert_close(model.decode(z, labels), model.reconstruct(x))


def two_level(codes=2, classes=0) -> VQVAE:
    """VQ-VAE-2 on 4x8 images: a 2x4 bottom grid and a 1x2 top grid (downsample 1), weights moved off their init."""
    torch.manual_seed(0)
    model = VQVAE((1, 4, 8), 2, codes, code_dim=2, channels=4, downsample=1, res_blocks=1, prior_channels=4,
                  prior_layers=2, num_classes=classes, autoencoder_images=100, decay=0.9, restart_below=0.1,
                  two_level=True)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.quantiser.codebook.normal_()
        model.top_quantiser.codebook.normal_()
    return model.eval()


def test_vqvae2_priors_are_normalised_over_both_levels_and_the_bound_is_below_the_exact_likelihood():
    """Over all 2^2 top grids times 2^8 bottom grids: p(top) p(bottom | top) sums to 1, and log p(x) by
    enumeration is at least the bound."""
    from genlab.discrete import categorical_log_prob

    model = two_level()
    model.set_progress(100)
    tops = torch.tensor(list(itertools.product(range(2), repeat=2))).view(-1, 1, 2)
    bottoms = torch.tensor(list(itertools.product(range(2), repeat=8))).view(-1, 2, 4)
    top = tops.repeat_interleave(len(bottoms), dim=0)
    bottom = bottoms.repeat(len(tops), 1, 1)
    with torch.no_grad():
        log_prior = model.log_prior(Codes(bottom, top), None)
        assert log_prior.double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        logits = model.decoder_logits(model.decoder_input(Codes(bottom, top)))
        x = torch.rand(2, 1, 4, 8).round() * 2 - 1
        exact = torch.stack([torch.logsumexp(categorical_log_prob(logits, image.expand(len(top), -1, -1, -1))
                                             + log_prior, dim=0) for image in x])
        assert bool((model.log_prob_bound(x) <= exact + 1e-5).all())


def test_vqvae2_stages_train_both_levels_autoencoder_then_both_priors():
    model = two_level(classes=2).train()
    x, labels = torch.rand(4, 1, 4, 8).round() * 2 - 1, torch.tensor([0, 1, 0, 1])
    parts = {"top_encoder": model.top_encoder, "top_upsample": model.top_upsample, "prior": model.prior,
             "top_prior": model.top_prior}
    for images_seen, trained in [(0, {"top_encoder", "top_upsample"}), (100, {"prior", "top_prior"})]:
        model.zero_grad(set_to_none=True)
        model.set_progress(images_seen)
        out = model(x, labels)
        loss = -out.log_px.sum() + out.commitment.sum() if out.log_prior is None else -out.log_prior.sum()
        loss.backward()
        assert {n for n, m in parts.items() if any(p.grad is not None for p in m.parameters())} == trained
        assert out.positions == 10


def test_vqvae2_bottom_prior_reads_the_top_codes_and_encoding_inverts_both_levels():
    model = two_level(codes=5, classes=2)
    bottom = torch.randint(0, 5, (1, 2, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model.prior.logits(bottom, torch.tensor([0]), torch.tensor([[[0, 1]]]))
        b = model.prior.logits(bottom, torch.tensor([0]), torch.tensor([[[3, 1]]]))
    assert not torch.allclose(a, b)  # the context changes every position's conditional
    x, labels = torch.rand(8, 1, 4, 8).round() * 2 - 1, torch.arange(8) % 2
    z, _ = model.encode(x, labels)
    assert z.shape == (8, model.latent_dim) == (8, 8 + 2)
    torch.testing.assert_close(model.decode(z, labels), model.reconstruct(x))


def test_a_side_not_divisible_by_the_downsampling_is_refused():
    with pytest.raises(ConfigError, match="divisible by 4"):
        VQVAE((1, 6, 8), 2, 4, 2, 4, 2, 1, 4, 2, 0, 10, 0.9, 0.1)


def test_an_autoencoder_stage_as_long_as_the_run_is_refused(tmp_path, mnist_root):
    import genlab
    from genlab.config import config_from_dict

    with pytest.raises(ConfigError, match="autoencoder_kimg=2 leaves nothing of train.kimg=2"):
        genlab.train(config_from_dict({
            "name": "too-long",
            "data": {"name": "mnist", "root": str(mnist_root), "limit": 256, "binarize": True},
            "model": {"name": "vqvae", "levels": 2, "autoencoder_kimg": 2},
            "objective": {"name": "vqvae"},
            "train": {"kimg": 2, "out_dir": str(tmp_path)},
        }))


@pytest.mark.slow  # a training run of ~5 s
def test_a_trained_vqvae_reports_its_bound_and_samples(tmp_path, mnist_root, capsys):
    import genlab
    from genlab.cli.main import main
    from genlab.config import config_from_dict

    run = genlab.train(config_from_dict({
        "name": "tiny-vqvae",
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 1024, "binarize": True, "image_size": 12},
        "model": {"name": "vqvae", "levels": 2, "codes": 16, "code_dim": 8, "channels": 16, "res_blocks": 1,
                  "prior_channels": 16, "prior_layers": 3, "autoencoder_kimg": 3},
        "objective": {"name": "vqvae", "lr": 2e-3, "prior_lr": 3e-3},
        "train": {"kimg": 5, "batch_size": 64, "out_dir": str(tmp_path), "log_every_kimg": 0.5,
                  "snapshot_every_kimg": 5, "tensorboard": False, "progress_bar": False},
    }))
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    autoencoder = [s for s in stats if "model/recon_nll_nats" in s]
    prior = [s for s in stats if "model/prior_nll_nats" in s]
    assert autoencoder and prior and max(s["kimg"] for s in autoencoder) <= min(s["kimg"] for s in prior)
    assert autoencoder[-1]["model/recon_nll_nats"] < 0.8 * autoencoder[0]["model/recon_nll_nats"]
    assert prior[-1]["model/prior_nll_nats"] < 9 * math.log(16)  # better than uniform codes on the 3 x 3 grid
    assert main(["eval", str(run), "--n", "200"]) == 0  # a likelihood model's default metric: its bound
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < record["nll_bound_nats"] < 144 * math.log(2)  # better than a fair coin per pixel
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "4", "-o", str(out)]) == 0 and out.exists()
    assert (run / "samples").exists() and any(p.name.startswith("samples-") for p in (run / "samples").iterdir())
    capsys.readouterr()
