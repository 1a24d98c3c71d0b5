"""The style-based generator (models/stylegan.py) and the lazy regularisers it trains with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab.config import model_config_from_dict
from genlab.data.base import Image
from genlab.data.captions import ATTRIBUTES
from genlab.errors import ConfigError
from genlab.metrics.mixing import inheritance, resolution_shares
from genlab.models import build_modules
from genlab.models.protocols import StyleBased
from genlab.models.layers import EqualLinear
from genlab.models.stylegan import minibatch_stddev, modulated_conv2d, path_lengths

SPEC = {"image": Image(3, 32, 32)}
TINY = {"name": "stylegan", "latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_channels": 4, "d_channels": 4,
        "max_channels": 16}


def tiny(**changes):
    torch.manual_seed(0)
    return build_modules(model_config_from_dict({**TINY, **changes}, "test"), SPEC)


def test_modulation_scales_inputs_and_demodulation_normalises_each_output_filter():
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(2, 3, 6, 6, generator=g), torch.randn(5, 3, 3, 3, generator=g)
    styles = torch.rand(2, 3, generator=g) + 0.5
    plain = modulated_conv2d(x, weight, styles, demodulate=False)
    by_hand = torch.stack([F.conv2d(x[i : i + 1], weight * styles[i][None, :, None, None], padding=1)[0] for i in range(2)])
    # two computations (one batched conv of scaled inputs vs a conv per example of scaled weights): float32 sums of
    # 27 products may round differently per CPU; outputs reach ~20, where 1e-4 is ~50 ulps
    assert torch.allclose(plain, by_hand, atol=1e-4)
    demodulated = modulated_conv2d(x, weight, styles)
    per_example = [weight * styles[i][None, :, None, None] for i in range(2)]
    per_example = [w / w.square().sum(dim=(1, 2, 3), keepdim=True).sqrt() for w in per_example]
    by_hand = torch.stack([F.conv2d(x[i : i + 1], per_example[i], padding=1)[0] for i in range(2)])
    assert torch.allclose(demodulated, by_hand, atol=1e-4)
    assert torch.allclose(modulated_conv2d(x, weight, 7.0 * styles), demodulated, atol=1e-4)  # scale-free in the styles


def test_same_latent_same_image_in_eval_fresh_noise_in_training():
    G = tiny()["G"]
    z = G.latents(2, generator=torch.Generator().manual_seed(1))
    for layer in G.convs:  # noise must matter for the check to mean anything
        layer.noise_strength.data.fill_(0.5)
    G.eval()
    assert torch.equal(G.decode(z), G.decode(z))
    G.train()
    assert not torch.equal(G(z), G(z))


def test_style_mixing_takes_coarse_styles_from_one_latent_and_fine_from_the_other():
    G = tiny()["G"].eval()
    assert isinstance(G, StyleBased)
    g = torch.Generator().manual_seed(2)
    z_a, z_b = G.latents(1, generator=g), G.latents(1, generator=g)
    with torch.no_grad():
        a, b = G.decode(z_a), G.decode(z_b)
        assert torch.allclose(G.mix(z_a, z_b, G.num_ws), a, atol=1e-6)
        assert torch.allclose(G.mix(z_a, z_b, 0), b, atol=1e-6)
        middle = G.mix(z_a, z_b, G.num_ws // 2)
    assert (middle - a).abs().mean() > 1e-4 and (middle - b).abs().mean() > 1e-4
    with pytest.raises(ConfigError, match="crossover must be"):
        G.mix(z_a, z_b, G.num_ws + 1)


def test_truncation_in_w_pulls_towards_the_mean_w_which_training_tracks():
    G = tiny()["G"]
    assert torch.equal(G.w_avg, torch.zeros(8))
    G.train()
    G(G.latents(16))
    moved = G.w_avg.clone()
    assert moved.abs().sum() > 0
    G.eval()
    G(G.latents(16))
    assert torch.equal(G.w_avg, moved)  # eval never moves it
    w = G.mapping(G.latents(4))
    assert torch.equal(G.truncate(w, 1.0), w)
    assert torch.allclose(G.truncate(w, 0.0), moved.expand(4, -1))
    assert torch.allclose(G.truncate(w, 0.5), 0.5 * (w + moved), atol=1e-6)


def test_mixing_regularisation_is_a_switch():
    G = tiny(mixing_prob=0.0)["G"].train()
    for layer in G.convs:
        layer.noise_strength.data.zero_()
    z = G.latents(3, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(G(z), G.synthesis(G.broadcast(G.mapping(z))), atol=1e-6)


def test_minibatch_stddev_adds_one_map_that_is_zero_for_identical_examples():
    x = torch.randn(1, 4, 4, 4).expand(6, -1, -1, -1)
    out = minibatch_stddev(x)
    assert out.shape == (6, 5, 4, 4) and out[:, -1].abs().max() < 1e-3
    assert minibatch_stddev(torch.randn(6, 4, 4, 4))[:, -1].min() > 0.1  # groups of 3 for 6 examples


def test_equalised_learning_rate_keeps_unit_variance_at_any_width():
    for width in (16, 1024):
        layer = EqualLinear(width, 256)
        assert 0.8 < layer(torch.randn(4096, width)).std() < 1.2


def test_path_lengths_match_the_jacobian_by_hand():
    """For a linear synthesis images = ws @ A the path length is |A y| averaged over layers exactly."""
    A = torch.randn(3, 10)
    ws = torch.randn(2, 4, 3, requires_grad=True)
    images = ws @ A  # [2, 4, 10]
    noise = torch.randn(2, 4, 10)
    expected = (noise @ A.T).square().sum(dim=2).mean(dim=1).sqrt()
    assert torch.allclose(path_lengths(images, ws, noise), expected, atol=1e-5)


def test_the_forward_pass_returns_path_lengths_that_train_mapping_and_synthesis():
    """G(z, with_path_lengths=True) is G(z) plus each fake's path length at its own ws, differentiable
    into both networks (the penalty trains them through G's DDP wrapper under torchrun)."""
    G = tiny()["G"].train()
    z = torch.randn(4, 8)
    torch.manual_seed(1)
    images = G(z)
    torch.manual_seed(1)
    same, lengths = G(z, with_path_lengths=True)
    assert torch.equal(images, same)
    assert lengths.shape == (4,) and bool((lengths > 0).all())
    (lengths - 1).square().mean().backward()
    for part in (G.mapping_net, G.convs):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_path_length_regularisation_needs_a_style_based_generator(tmp_path):
    import genlab
    from genlab.config import config_from_dict

    config = config_from_dict({
        "name": "pl", "data": {"name": "sprites", "image_size": 32, "n_train": 64, "n_test": 8},
        "model": {"name": "dcgan", "latent_dim": 8, "g_channels": 4, "d_channels": 4, "d_norm": "none"},
        "objective": {"name": "gan", "regularisers": [{"name": "path_length"}]}, "train": {"kimg": 0.032, "out_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="model.name=stylegan"):
        genlab.train(config)


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    import genlab
    from genlab.config import config_from_dict

    return genlab.train(config_from_dict({
        "name": "style", "data": {"name": "color_sprites", "image_size": 32, "n_train": 64, "n_test": 8},
        "model": TINY, "objective": {"name": "gan", "regularisers": [{"name": "r1", "weight": 0.1, "every": 4}], "betas": [0.0, 0.99]},
        "train": {"kimg": 0.064, "batch_size": 16, "out_dir": str(tmp_path_factory.mktemp("style")),
                  "progress_bar": False, "tensorboard": False, "snapshot_every_kimg": 0}}))


def test_mixing_grid_and_w_truncation_from_the_command_line(style_run, tmp_path, capsys):
    from PIL import Image as PILImage

    from genlab.cli.main import main

    assert main(["latent", "mix", str(style_run), "--rows", "2", "--cols", "3", "-o", str(tmp_path / "mix.png")]) == 0
    assert "2 x 3 style-mixing grid" in capsys.readouterr().out
    width, height = PILImage.open(tmp_path / "mix.png").size
    assert (width, height) == (4 * 34 + 2, 3 * 34 + 2)  # a blank corner, 3 column images, 2 rows of 1 + 3
    assert main(["sample", str(style_run), "--psi", "0", "-n", "4", "-o", str(tmp_path / "mean.png")]) == 0
    mean = np.asarray(PILImage.open(tmp_path / "mean.png"), dtype=np.int16)
    tiles = [mean[2 + 34 * r : 34 * r + 34, 2 + 34 * c : 34 * c + 34] for r in range(2) for c in range(2)]
    assert all(np.array_equal(tiles[0], t) for t in tiles)  # psi 0: every sample is the mean image
    assert main(["sample", str(style_run), "--psi", "3", "-o", str(tmp_path / "bad.png")]) == 2
    assert "use 0..2" in capsys.readouterr().err


def test_latent_tools_work_in_w_through_the_wspace_view(style_run, tmp_path, capsys):
    import genlab
    from genlab.cli.main import main
    from genlab.latent import interpolate
    from genlab.latent.sample import decode
    from genlab.latent.style import WSpace

    G = genlab.load(style_run)
    W = WSpace(G)
    w = W.latents(2, generator=torch.Generator().manual_seed(0))
    z = G.latents(2, generator=torch.Generator().manual_seed(0))
    assert w.shape == (2, G.w_dim) and torch.allclose(w, G.mapping(z))
    assert torch.allclose(decode(W, w), decode(G, z), atol=1e-6)  # the same images, reached through w
    path = interpolate.interpolate(W, w, steps=5)
    # two computations (path[0] decoded in a batch of 5 vs alone): float32 conv/matmul kernels may block sums
    # differently per batch size and CPU; images in [-1, 1]: 1e-4 is ~800 ulps at 1, far below a wrong latent's change
    assert interpolate.default_method(W) == "lerp" and torch.allclose(path[0], decode(W, w[:1]), atol=1e-4)
    assert main(["latent", "interpolate", str(style_run), "--seeds", "1,2", "--space", "w", "-o", str(tmp_path / "w.png")]) == 0
    assert "lerp interpolation" in capsys.readouterr().out


def test_inheritance_reads_which_parent_each_attribute_of_a_mix_came_from():
    a = torch.tensor([[0, 0, 0, 0, 0, 0]] * 4)
    b = torch.tensor([[1, 1, 1, 1, 1, 0]] * 4)  # rotation never differs
    mixed = torch.tensor([[0, 1, 1, 0, 2, 0], [0, 1, 1, 1, 2, 1], [0, 1, 0, 0, 2, 0], [1, 1, 1, 1, 2, 0]])
    got = inheritance(a, b, mixed, list(ATTRIBUTES))
    assert got["shape"] == (0.75, 0.25, 4) and got["size"] == (0.0, 1.0, 4) and got["colour"] == (0.25, 0.75, 4)
    assert got["horizontal"] == (0.0, 0.0, 4)  # a third value: from neither parent
    assert got["rotation"][2] == 0 and math.isnan(got["rotation"][0])


def test_resolution_parts_sum_to_the_image_and_their_shares_to_one():
    G = tiny()["G"]
    ws = G.broadcast(G.mapping(G.latents(3, generator=torch.Generator().manual_seed(3))))
    with torch.no_grad():
        parts = G.resolution_parts(ws)
        image = G.synthesis(ws)  # training mode: unclamped, the sum itself
    assert list(parts) == [4, 8, 16, 32] and all(p.shape == image.shape for p in parts.values())
    # the same upsamplings in another order: float32 sums may round differently per CPU
    assert torch.allclose(sum(parts.values()), image, atol=1e-5)
    shares = resolution_shares(parts)
    assert math.isclose(sum(shares.values()), 1.0, rel_tol=1e-6) and all(0 < s < 1 for s in shares.values())
    with torch.no_grad():  # silence the 32-px toRGB: its share goes to zero, the others grow
        G.to_rgb[-1].weight.zero_()
        G.to_rgb[-1].bias.zero_()
        silenced = resolution_shares(G.resolution_parts(ws))
    assert silenced[32] < 1e-6 and all(silenced[r] > shares[r] for r in (4, 8, 16))
