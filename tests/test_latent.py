"""The latent toolkit (genlab.latent), the disentanglement scores and `genlab latent`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import genlab
from genlab.cli.main import main
from genlab.config import config_from_dict, model_config_from_dict
from genlab.data import load_dataset
from genlab.data.base import Classes, Image, TensorDataset
from genlab.data.tensors import save_tensors
from genlab.errors import ConfigError
from genlab.images import save_gif, save_strip, to_uint8
from genlab.latent import arithmetic, attributes, conditional, edit, interpolate, invert, sample, traverse
from genlab.metrics.disentanglement import factor_latents, mig, sap
from genlab.models import build_modules


def tiny(name: str, spec: dict, **cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    modules = build_modules(model_config_from_dict({"name": name, **cfg}, "test"), spec)
    return modules["vae" if "vae" in modules else "G"].eval()


GREY = {"image": Image(1, 28, 28)}
LABELLED = {"image": Image(1, 28, 28), "label": Classes(("a", "b", "c"))}


# ----------------------------------------------------------------------------- interpolation


def test_slerp_hits_its_endpoints_and_keeps_equal_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 64, generator=g)
    b = b * a.norm() / b.norm()
    t = torch.linspace(0, 1, 11)
    path = interpolate.slerp(a, b, t)
    assert torch.equal(path[0], a) and torch.allclose(path[-1], b, atol=1e-6)
    assert torch.allclose(path.norm(dim=1), a.norm().expand(11), rtol=1e-5)
    middle = interpolate.lerp(a, b, t)[5].norm()
    assert middle < 0.9 * a.norm()  # the straight line cuts inside the sphere; slerp does not


def test_slerp_batches_and_falls_back_to_lerp_for_parallel_endpoints():
    a = torch.randn(3, 5)
    t = torch.tensor([0.0, 0.25, 1.0])
    assert interpolate.slerp(a, 2 * a, t).shape == (3, 3, 5)
    assert torch.allclose(interpolate.slerp(a, 2 * a, t), interpolate.lerp(a, 2 * a, t), atol=1e-6)


def test_path_passes_through_every_key():
    keys = torch.randn(3, 4)
    path = interpolate.interpolation_path(keys, steps=5, method="lerp")
    assert path.shape == (9, 4)
    assert torch.allclose(path[[0, 4, 8]], keys, atol=1e-6)
    with pytest.raises(ConfigError, match="at least two latents"):
        interpolate.interpolation_path(keys[:1], 5)


def test_gif_and_strip_are_written(tmp_path):
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    gif = PILImage.open(save_gif(images, tmp_path / "a.gif"))
    assert gif.n_frames == 6 and gif.size == (8, 8)  # forwards, then back without repeating the ends
    assert PILImage.open(save_strip(images, tmp_path / "a.png")).size == (4 * 10 + 2, 12)


# ----------------------------------------------------------------------------- traversals


def test_traversing_a_dimension_the_decoder_ignores_changes_nothing():
    vae = tiny("conv_vae", GREY, latent_dim=3, channels=8)
    with torch.no_grad():
        vae.decoder_in.weight[:, 1] = 0.0  # dimension 1 no longer reaches the decoder
    z = torch.randn(3)
    grid = traverse.traversal(vae, z, dims=[1, 2], steps=5, span=3.0)
    ignored, used = grid.images[:5], grid.images[5:]
    assert grid.nrow == 5 and torch.allclose(ignored, ignored[:1].expand_as(ignored), atol=1e-6)
    assert (used - used[:1]).abs().amax() > 1e-3


def test_traversal_rows_set_or_shift_one_dimension():
    decoded = []
    traverse.traverse(lambda z: decoded.append(z) or z, torch.tensor([1.0, 2.0]), [1], torch.tensor([-1.0, 1.0]),
                      relative=True)
    assert torch.equal(decoded[0], torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
    with pytest.raises(ConfigError, match=r"unknown latent dimension 5: .* 2 dimensions, numbered 0..1"):
        traverse.check_dims([0, 5], 2)


# ----------------------------------------------------------------------------- edits and inversion


def test_vae_edit_round_trips_an_unchanged_latent():
    vae = tiny("conv_vae", GREY, latent_dim=4, channels=8)
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    found = edit.image_latents(vae, x)
    assert torch.allclose(edit.edit(vae, found.z), vae.reconstruct(x), atol=1e-6)
    assert torch.allclose(found.reconstruction, vae.reconstruct(x), atol=1e-6)
    changed = edit.edit_latents(found.z, set_dims={0: 2.0}, shift_dims={1: 0.5}, direction=torch.ones(4), strength=2.0)
    assert torch.allclose(changed[:, 0], torch.full((3,), 4.0))
    assert torch.allclose(changed[:, 1], found.z[:, 1] + 2.5)
    assert torch.allclose(changed[:, 2:], found.z[:, 2:] + 2.0)


def test_a_model_without_an_encoder_needs_inversion():
    G = tiny("dcgan", GREY, latent_dim=8, g_channels=8, d_channels=8)
    with pytest.raises(ConfigError, match="has no encoder"):
        edit.image_latents(G, torch.zeros(1, 1, 28, 28))


def varied_generator() -> torch.nn.Module:
    """A tiny DCGAN generator whose images span [-1, 1] (DCGAN's N(0, 0.02) init makes them nearly
    constant), with batch-norm statistics gathered in a few training-mode passes."""
    G = tiny("dcgan", GREY, latent_dim=8, g_channels=8, d_channels=8)
    for m in G.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            m.reset_parameters()
            m.weight.data *= 3.0
    G.train()
    with torch.no_grad():
        for _ in range(30):
            G(torch.randn(64, 8))
    return G.eval()


def test_gan_inversion_recovers_a_sample_of_the_generator_itself():
    G = varied_generator()
    g = torch.Generator().manual_seed(1)
    x, other = G.sample(4, generator=g), G.sample(4, generator=g)
    chance = (x - other).square().flatten(1).mean(1)  # the error of a random latent: about 0.4
    found = invert.invert(G, x, steps=100, restarts=4, generator=torch.Generator().manual_seed(2))
    assert (chance > 0.1).all()
    assert (found.mse < 1e-3).all(), found.mse  # the stated bound: under 1e-3 per pixel, 1/400 of chance
    assert found.restart_mse.shape == (4, 4) and torch.allclose(found.mse, found.restart_mse.min(1).values)
    assert torch.allclose((G.decode(found.z) - x).square().flatten(1).mean(1), found.mse, atol=1e-6)
    assert all(p.requires_grad for p in G.parameters()) and not G.training  # restored


# ----------------------------------------------------------------------------- attributes, arithmetic, classes


def test_factor_attribute_points_along_the_factor():
    factor = torch.linspace(0, 1, 300)
    noise = torch.randn(300, generator=torch.Generator().manual_seed(0)) * 0.01
    latents = torch.stack([factor * 3, torch.zeros(300), noise], 1)
    vector = attributes.factor_attribute(latents, factor)
    assert vector[0] == pytest.approx(2.0, abs=0.05)  # top third's mean 2.5 minus bottom third's 0.5
    assert vector[1:].abs().max() < 0.01


def test_class_means_and_arithmetic_average_their_terms():
    latents, labels = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 4.0]]), torch.tensor([0, 0, 1])
    assert torch.equal(attributes.class_means(latents, labels, 2), torch.tensor([[1.0, 2.0], [4.0, 4.0]]))
    result = arithmetic.vector_arithmetic(latents[:2], latents[2:], torch.zeros(3, 2))
    assert torch.equal(result, torch.tensor([-3.0, -2.0]))


def test_arithmetic_grid_rows_are_exemplars_then_mean():
    vae = tiny("conv_vae", GREY, latent_dim=4, channels=8)
    a, b, c = torch.randn(3, 4), torch.randn(1, 4), torch.randn(2, 4)
    grid = arithmetic.arithmetic_grid(vae, a, b, c)
    assert grid.nrow == 4 and grid.images.shape == (16, 1, 28, 28)
    # two computations (a row decoded as a batch of 4 vs one latent alone): float32 conv kernels may round
    # differently per batch size and CPU; images in [-1, 1]: 1e-4 is ~800 ulps at 1; a wrong latent moves them by > 1e-2
    assert torch.allclose(grid.images[3], sample.decode(vae, a.mean(0, keepdim=True))[0], atol=1e-4)
    assert torch.equal(grid.images[5], torch.ones(1, 28, 28))  # b's row padded with white
    assert torch.allclose(grid.images[12], sample.decode(vae, (a.mean(0) - b[0] + c.mean(0))[None])[0], atol=1e-4)


def test_conditional_sweeps_and_class_range():
    cvae = tiny("conv_vae", LABELLED, latent_dim=4, channels=8, conditional=True)
    z = torch.randn(2, 4)
    grid = conditional.sweep_grid(cvae, z)
    assert grid.nrow == 3 and grid.images.shape == (6, 1, 28, 28)
    # two computations (decoded alone vs in a batch of 2): float32 kernels may round differently per CPU;
    # 1e-4 is ~800 ulps at 1, far below the change of a wrong class or row (> 1e-2)
    assert torch.allclose(grid.images[4], conditional.latent_sweep(cvae, z, 1)[1], atol=1e-4)
    with pytest.raises(ConfigError, match=r"class 3 is out of range: .* 3 classes, 0..2"):
        conditional.class_sweep(cvae, z[0], [0, 3])
    with pytest.raises(ConfigError, match="give a class in 0..2"):
        sample.decode(cvae, z)


# ----------------------------------------------------------------------------- MIG and SAP


def test_mig_by_hand():
    # One binary factor v = 0, 0, 1, 1. z1 = 0, 0, 0, 1 tells part of it; z2 = 0, 1, 0, 1 nothing.
    # I(z1; v) = 1/2 log(4/3) + 1/4 log(2/3) + 1/4 log 2 nats (cells (0,0): 2, (0,1): 1, (1,1): 1
    # of 4, marginals z1: 3/4, 1/4; v: 1/2, 1/2), I(z2; v) = 0, H(v) = log 2.
    latents = np.array([[0, 0], [0, 1], [0, 0], [1, 1]], dtype=float)
    factors = np.array([[0], [0], [1], [1]], dtype=float)
    expected = (0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)) / math.log(2)  # 0.3113
    assert mig(latents, factors)["mig"] == pytest.approx(expected, abs=1e-12)


def test_mig_is_one_for_latents_that_copy_one_factor_each_and_zero_for_noise():
    grid = np.array([[a, b] for a in range(2) for b in range(4)], dtype=float)  # independent factors
    assert mig(grid[:, ::-1], grid, names=["x", "y"]) == {"mig": 1.0, "mig_per_factor": {"x": 1.0, "y": 1.0}}
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 10_000), rng.uniform(size=10_000)], 1)
    assert mig(rng.normal(size=(10_000, 4)), factors)["mig"] < 0.01


def test_sap_separates_copies_from_noise():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 3, 4000), rng.uniform(size=4000), rng.uniform(size=4000)], 1)
    copies = np.concatenate([factors, rng.normal(size=(4000, 2))], 1)
    scores = sap(copies, factors, names=["shape", "scale", "x"])
    assert scores["sap_per_factor"]["scale"] == pytest.approx(1.0, abs=0.01)
    assert scores["sap_per_factor"]["shape"] > 0.6  # accuracy 1 against the next dim's chance, about 1/3
    assert sap(rng.normal(size=(4000, 3)), factors)["sap"] < 0.02


def test_disentanglement_metrics_need_factors():
    data = TensorDataset("mnist", {"image": Image(1, 28, 28)}, {"image": torch.zeros(4, 1, 28, 28, dtype=torch.uint8)})
    ctx = SimpleNamespace(test_data=data, settings=SimpleNamespace(n=4), notes=[], model=None)
    with pytest.raises(ConfigError, match="ground-truth factors of variation, and mnist has none"):
        factor_latents(ctx)


# ----------------------------------------------------------------------------- the CLI


def train_tiny(out: Path, data: dict, model: dict, objective: str) -> Path:
    return genlab.train(config_from_dict({
        "name": model["name"], "data": data, "model": model, "objective": {"name": objective},
        "train": {"kimg": 0.128, "batch_size": 32, "out_dir": str(out), "progress_bar": False, "tensorboard": False,
                  "log_every_kimg": 0.128, "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0},
    }))


SPRITES = {"name": "sprites", "image_size": 28, "n_train": 256, "n_test": 64}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("latent")
    vae = train_tiny(out, SPRITES, {"name": "conv_vae", "latent_dim": 4, "channels": 8}, "vae")
    gan = train_tiny(out, SPRITES, {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8}, "gan")
    # Sprites labelled by their shape, for a conditional VAE.
    sprites = load_dataset(config_from_dict({"name": "x", "data": SPRITES, "model": {"name": "conv_vae"},
                                                         "objective": {"name": "vae"}}).data)
    labelled = save_tensors(out / "labelled.safetensors", sprites["image"], sprites["factors"][:, 0].long(),
                            ("square", "ellipse", "heart"))
    cvae = train_tiny(out, {"name": "tensors", "path": str(labelled)},
                      {"name": "conv_vae", "latent_dim": 4, "channels": 8, "conditional": True}, "vae")
    image = out / "sprite.png"
    PILImage.fromarray(to_uint8(genlab.load(vae).sample(1, torch.Generator().manual_seed(0)))[0, 0].numpy()).save(image)
    rgb = out / "big.png"
    PILImage.new("RGB", (56, 40), (255, 0, 0)).save(rgb)
    return SimpleNamespace(vae=str(vae), gan=str(gan), cvae=str(cvae), image=str(image), rgb=str(rgb), out=out)


def error_of(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_tools_write_their_images(runs, capsys):
    out = runs.out
    assert main(["latent", "interpolate", runs.vae, "--seeds", "1,2,3", "--steps", "4", "-o", str(out / "i.png")]) == 0
    assert PILImage.open(out / "i.png").size == (7 * 30 + 2, 32)
    assert main(["latent", "interpolate", runs.vae, "--images", runs.image, runs.image, "-o", str(out / "i.gif")]) == 0
    assert main(["latent", "traverse", runs.vae, "--dims", "0,3", "--steps", "5", "-o", str(out / "t.png")]) == 0
    assert PILImage.open(out / "t.png").size == (5 * 30 + 2, 2 * 30 + 2)
    assert main(["latent", "arithmetic", runs.vae, "--a", "1,2,3", "--b", "4", "--c", runs.image,
                 "-o", str(out / "a.png")]) == 0
    assert main(["latent", "edit", runs.vae, runs.image, "--set", "0=2", "--attribute", "bigger", "--strength", "0,2",
                 "-o", str(out / "e.png")]) == 0
    assert PILImage.open(out / "e.png").size == (4 * 30 + 2, 32)  # input | reconstruction | two edits
    assert main(["latent", "invert", runs.gan, runs.image, "--invert-steps", "20", "--restarts", "2",
                 "-o", str(out / "v.png"), "--json", str(out / "v.json")]) == 0
    record = json.loads((out / "v.json").read_text())
    assert len(record["z"][0]) == 8 and record["mse"][0] >= 0
    assert main(["latent", "edit", runs.gan, runs.image, "--invert", "--invert-steps", "5", "--shift", "1=1",
                 "-o", str(out / "g.png")]) == 0
    assert main(["latent", "sweep", runs.cvae, "-n", "2", "-o", str(out / "s.png")]) == 0
    assert PILImage.open(out / "s.png").size == (3 * 30 + 2, 2 * 30 + 2)
    assert main(["latent", "arithmetic", runs.cvae, "--class", "1", "--a", "class:heart", "--b", "class:0", "--c", "5",
                 "-o", str(out / "c.png")]) == 0
    assert main(["latent", "edit", runs.cvae, runs.image, "--class", "0", "--attribute", "heart-square",
                 "-o", str(out / "ce.png")]) == 0


def test_cli_explains_bad_arguments(runs, capsys, tmp_path):
    out = str(tmp_path / "x.png")
    assert "unknown latent dimension 4: this model's latents have 4 dimensions, numbered 0..3" in error_of(
        capsys, ["latent", "traverse", runs.vae, "--dims", "1,4", "-o", out])
    assert "unknown latent dimension 9" in error_of(
        capsys, ["latent", "edit", runs.vae, runs.image, "--set", "9=1", "-o", out])
    err = error_of(capsys, ["latent", "edit", runs.gan, runs.image, "--set", "1=1", "-o", out])
    assert "exports a DCGANGenerator, which has no encoder" in err and "pass --invert" in err
    assert "class 5 is out of range: this ConvVAE has 3 classes, 0..2" in error_of(
        capsys, ["latent", "traverse", runs.cvae, "--class", "5", "-o", out])
    assert "class-conditional with 3 classes: give a class in 0..2 (--class K)" in error_of(
        capsys, ["latent", "interpolate", runs.cvae, "--seeds", "1,2", "-o", out])
    assert "not class-conditional" in error_of(capsys, ["latent", "traverse", runs.vae, "--class", "0", "-o", out])
    assert "ending in .png or .gif" in error_of(
        capsys, ["latent", "interpolate", runs.vae, "--seeds", "1,2", "-o", "x.jpg"])
    assert "at least two seeds" in error_of(capsys, ["latent", "interpolate", runs.vae, "--seeds", "1", "-o", out])
    assert "does not exist" in error_of(capsys, ["latent", "edit", runs.vae, "nope.png", "--set", "0=1", "-o", out])
    assert "unknown attribute 'colour'" in error_of(
        capsys, ["latent", "edit", runs.vae, runs.image, "--attribute", "colour", "-o", out])
    assert "needs a model with an encoder" in error_of(
        capsys, ["latent", "edit", runs.gan, runs.image, "--invert", "--attribute", "bigger", "-o", out])
    assert "unknown class 'star'" in error_of(
        capsys, ["latent", "arithmetic", runs.cvae, "--class", "0", "--a", "class:star", "--b", "1", "--c", "2",
                 "-o", out])


def test_cli_converts_an_image_of_the_wrong_mode_and_size_with_a_note(runs, capsys, tmp_path):
    assert main(["latent", "edit", runs.vae, runs.rgb, "--shift", "0=1", "-o", str(tmp_path / "e.png")]) == 0
    err = capsys.readouterr().err
    assert "big.png is RGB; converted to grey (L)" in err
    assert "resized big.png from 56x40 to the model's 28x28" in err


def test_eval_reports_mig_and_sap_on_sprites(runs, capsys):
    assert main(["eval", runs.vae, "--metrics", "mig,sap", "--n", "64"]) == 0
    record = json.loads(Path(runs.vae, "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["mig"] <= 1 and set(record["mig_per_factor"]) == {"shape", "scale", "rotation", "pos_x", "pos_y"}
    assert 0 <= record["sap"] <= 1
