"""CycleGAN: the ResNet generator's shapes and range, the history pool, phases that train only
their modules, snapshots, ``genlab.load(run, role=...)`` and ``genlab translate --direction``
(exact resume with a full pool is test_seam.py's "cyclegan" case)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import genlab
from genlab.cli.main import main
from genlab.cli.translate import load_translator
from genlab.config import config_from_dict, load_config
from genlab.data.base import Image, TensorDataset
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.models.cyclegan import CycleGANConfig, ResidualBlock, ResnetGenerator
from genlab.models.protocols import Translator
from genlab.registry import MODELS
from genlab.training.loop import _training_only
from genlab.training.objectives.cyclegan import CycleGANObjectiveConfig, CycleGANStep, HistoryPool

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Grey sprites (replicated to RGB by the unpaired dataset) <-> colour sprites on textures.
DATA = {"name": "unpaired", "a": {"name": "sprites", "image_size": 32, "n_train": 128, "n_test": 16},
        "b": {"name": "color_sprites", "image_size": 32, "n_train": 128, "n_test": 16}}
MODEL = {"name": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4}
TRAIN = {"batch_size": 16, "log_every_kimg": 0.032, "snapshot_every_kimg": 0.064, "checkpoint_every_kimg": 0.064,
         "progress_bar": False, "tensorboard": False, "threads": 1}


def unpaired(n: int, a_channels: int, b_channels: int, size: int = 32) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    fields = {"a": torch.randint(0, 256, (n, a_channels, size, size), generator=g, dtype=torch.uint8),
              "b": torch.randint(0, 256, (n, b_channels, size, size), generator=g, dtype=torch.uint8)}
    return TensorDataset("unpaired", {"a": Image(a_channels, size, size), "b": Image(b_channels, size, size)}, fields)


def tiny_step(a_channels: int = 1, b_channels: int = 3, **objective) -> tuple[CycleGANStep, TensorDataset]:
    data = unpaired(8, a_channels, b_channels)
    torch.manual_seed(0)
    modules = build_modules(CycleGANConfig(g_channels=4, g_blocks=1, d_channels=4), data.spec)
    return CycleGANStep(CycleGANObjectiveConfig(**objective), modules, seed=0), data


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("source, target", [((1, 32, 32), (3, 32, 32)), ((3, 28, 28), (1, 28, 28)),
                                            ((3, 64, 64), (3, 64, 64))])
def test_resnet_generator_keeps_the_size_and_maps_into_the_target_range(source, target):
    torch.manual_seed(0)
    G = ResnetGenerator(source, target, channels=4, blocks=2)
    assert isinstance(G, Translator) and sum(isinstance(m, ResidualBlock) for m in G.modules()) == 2
    x = torch.rand(3, *source) * 2 - 1
    y = G(x * 100)  # large inputs saturate the tanh, never leave [-1, 1]
    assert y.shape == (3, *target) and y.min() >= -1 and y.max() <= 1
    assert torch.equal(G.translate(x), G.translate(x)) and G.training  # no noise; mode restored


def test_residual_blocks_run_at_a_quarter_of_the_resolution_and_four_times_the_width():
    G = ResnetGenerator((1, 32, 32), (1, 32, 32), channels=4, blocks=1)
    seen = []
    block = next(m for m in G.modules() if isinstance(m, ResidualBlock))
    block.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    G(torch.zeros(2, 1, 32, 32))
    assert seen == [(2, 16, 8, 8)]


@pytest.mark.parametrize("spec, match", [
    ({"a": Image(3, 32, 32), "b": Image(3, 64, 64)}, "one size"),
    ({"a": Image(1, 30, 30), "b": Image(1, 30, 30)}, "divisible by 4"),
    ({"image": Image(1, 32, 32)}, "data.name=unpaired"),
])
def test_the_builder_names_what_to_change(spec, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.get("cyclegan").builder(CycleGANConfig(), spec)


# ----------------------------------------------------------------------------- history pool


def test_the_pool_returns_the_current_images_while_it_fills():
    pool = HistoryPool(5, seed=0)
    first, second = torch.randn(3, 1, 2, 2), torch.randn(2, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and torch.equal(pool.query(second), second)
    assert torch.equal(torch.stack(pool.images), torch.cat([first, second]))


def test_a_full_pool_swaps_about_half_for_stored_images_seeded():
    pool = HistoryPool(50, seed=3)
    stored = torch.arange(50.0).view(50, 1, 1, 1)
    pool.query(stored)
    fresh = 100 + torch.arange(1000.0).view(1000, 1, 1, 1)
    out = pool.query(fresh).flatten()
    swapped = out != fresh.flatten()
    assert 0.45 < swapped.float().mean() < 0.55
    # A swapped-out image is an earlier one (first the 50 stored, later fresh ones that replaced them).
    assert (out[swapped] < fresh.flatten()[swapped]).all() and len(pool.images) == 50
    again = HistoryPool(50, seed=3)
    again.query(stored)
    assert torch.equal(again.query(fresh).flatten(), out)
    other = HistoryPool(50, seed=4)
    other.query(stored)
    assert not torch.equal(other.query(fresh).flatten(), out)


def test_the_pool_state_round_trip_continues_the_same_draws():
    pool = HistoryPool(4, seed=0)
    pool.query(torch.randn(6, 3, 2, 2))
    copy = HistoryPool(4, seed=99)
    copy.load_state_dict(pool.state_dict(), torch.device("cpu"))
    nxt = torch.randn(8, 3, 2, 2)
    assert torch.equal(pool.query(nxt), copy.query(nxt))
    empty = HistoryPool(4, seed=0)
    empty.load_state_dict(HistoryPool(4, seed=0).state_dict(), torch.device("cpu"))
    assert empty.images == []


def test_pool_size_zero_shows_d_the_current_fakes():
    fakes = torch.randn(4, 1, 2, 2)
    pool = HistoryPool(0, seed=0)
    assert pool.query(fakes) is fakes and pool.state_dict()["images"].numel() == 0


# ----------------------------------------------------------------------------- step


@pytest.mark.parametrize("channels", [(1, 3), (3, 3)])
def test_each_phase_trains_only_its_modules(channels, run_phase):
    step, data = tiny_step(*channels)
    assert [(p.name, p.trains, p.reuse_batch) for p in step.phases()] == [
        ("G", ("G_AB", "G_BA"), False), ("D", ("D_A", "D_B"), True)]
    batch = data.batch(slice(0, 8))
    for phase in step.phases():
        out, reached = run_phase(step, phase, batch)
        for name, got in reached.items():
            assert got == (name in phase.trains), f"{phase.name} phase, gradients of {name}"
        if phase.name == "G":  # identity needs G_AB to take domain B's images: same channel counts only
            assert {"cycle_ABA", "cycle_BAB", "gan_AB", "gan_BA"} <= out.stats.keys()
            assert ("identity_A" in out.stats) == (channels[0] == channels[1])
        else:
            assert set(out.stats) == {"D_A(a)", "D_A(G_BA(b))", "D_B(b)", "D_B(G_AB(a))"}


@pytest.mark.parametrize("ratio", [1.0, 0.25, 0.0])
def test_g_loss_weighs_the_b_to_a_to_b_cycle_by_its_ratio(ratio):
    step, data = tiny_step(3, 3, cycle_weight=10.0, bab_cycle_ratio=ratio, identity_weight=5.0)
    with torch.no_grad():
        out = step.g_loss(data.batch(slice(0, 8)))
    s = {name: float(value) for name, value in out.stats.items()}
    expected = (s["gan_AB"] + s["gan_BA"] + 10.0 * (s["cycle_ABA"] + ratio * s["cycle_BAB"])
                + 5.0 * (s["identity_A"] + s["identity_B"]))
    assert s["cycle_BAB"] > 0.01 and float(out.loss) == pytest.approx(expected, rel=1e-5)


def test_d_sees_the_fakes_g_made_before_its_update():
    step, data = tiny_step(pool_size=50)
    batch = data.batch(slice(0, 8))
    with torch.no_grad():
        before = step.modules["G_AB"](batch["a"])
    g_phase, d_phase = step.phases()
    with _training_only(step, g_phase, wrapped={}):
        g_phase.loss(batch).loss.backward()
    step.optimizers["G"].step()
    with _training_only(step, d_phase, wrapped={}):
        d_phase.loss(batch)
    assert torch.equal(torch.stack(step.pools["b"].images), before)  # the pool filled with pre-update fakes


def test_snapshot_rows_show_input_translation_and_reconstruction():
    step, data = tiny_step()
    fixed = data.batch(slice(0, 8))
    grids = step.snapshots(fixed, seed=0)
    assert set(grids) == {"translations_AtoB", "translations_BtoA"}
    a_to_b = grids["translations_AtoB"]
    assert a_to_b.nrow == 3 and a_to_b.images.shape == (24, 3, 32, 32)
    fake_b = step.modules["G_AB"].translate(fixed["a"])
    assert torch.equal(a_to_b.images[0], fixed["a"][0].expand(3, -1, -1))
    assert torch.equal(a_to_b.images[1], fake_b[0])
    assert torch.equal(a_to_b.images[2], step.modules["G_BA"].translate(fake_b)[0].expand(3, -1, -1))
    assert torch.equal(grids["translations_BtoA"].images[0], fixed["b"][0])


# ----------------------------------------------------------------------------- load and translate


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    config = config_from_dict({"name": "cyclegan", "data": DATA, "model": MODEL,
                               "objective": {"name": "cyclegan", "pool_size": 8},
                               "train": {**TRAIN, "kimg": 0.064, "out_dir": str(tmp_path_factory.mktemp("runs"))}})
    return genlab.train(config)


def test_load_builds_g_ba_alone_from_the_run_modules(trained_run):
    entry = MODELS.get("cyclegan")
    real_builder, built = entry.builder, []

    def watched(cfg, spec):
        return {role: (lambda role=role, make=make: built.append(role) or make())
                for role, make in real_builder(cfg, spec).items()}

    object.__setattr__(entry, "builder", watched)  # a frozen registry entry, as in test_seam.py
    try:
        G_AB, G_BA = genlab.load(trained_run), genlab.load(trained_run, role="G_BA")
    finally:
        object.__setattr__(entry, "builder", real_builder)
    assert built == ["G_AB", "G_BA"] and not G_BA.training
    step = genlab.load_step(trained_run)
    for name, model in (("G_AB", G_AB), ("G_BA", G_BA)):
        for key, value in step.modules[name].state_dict().items():
            assert torch.equal(value, model.state_dict()[key]), f"{name}.{key}"
    with pytest.raises(ConfigError, match="has no role 'G'; it has G_AB, G_BA, D_A, D_B"):
        genlab.load(trained_run, role="G")


def test_translate_direction_picks_the_generator(trained_run, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(inputs / "x.png")
    x = torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None].float() / 127.5 - 1
    written = {}
    for direction, role in (("AtoB", None), ("BtoA", "G_BA")):
        out = tmp_path / direction
        assert main(["translate", str(trained_run), str(inputs), "-o", str(out), "--direction", direction]) == 0
        with PILImage.open(out / "x.png") as image:
            written[direction] = torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()).float()
        expected = genlab.load(trained_run, role=role).translate(x)[0]
        assert (written[direction] - (expected + 1) * 127.5).abs().max() <= 1  # uint8 rounding
    assert not torch.equal(written["AtoB"], written["BtoA"])
    with pytest.raises(SystemExit):
        main(["translate", str(trained_run), str(inputs), "-o", str(tmp_path / "o"), "--direction", "CtoD"])
    assert "invalid choice: 'CtoD'" in capsys.readouterr().err


def test_a_one_way_run_says_why_it_has_no_b_to_a(tmp_path):
    pix2pix = config_from_dict({
        "name": "pix2pix", "model": {"name": "pix2pix", "g_channels": 4, "d_channels": 4}, "objective": {"name": "pix2pix"},
        "data": {"name": "pairs", "kind": "grey2color", "base": {"name": "color_sprites", "n_train": 16, "n_test": 4}},
        "train": {**TRAIN, "kimg": 0.016, "out_dir": str(tmp_path)}})
    with pytest.raises(ConfigError, match="has no role 'G_BA'.*a pix2pix run translates AtoB only"):
        load_translator(str(genlab.train(pix2pix)), "cpu", "BtoA")


def test_the_shipped_config_trains_on_a_tiny_budget(mnist_root, tmp_path):
    config = load_config(CONFIGS / "cyclegan_sprites2mnist.yaml", [
        f"data.b.root={mnist_root}", "data.b.download=false", "data.b.limit=64", "data.a.n_train=64", "data.a.n_test=8",
        "train.kimg=0.032", "train.log_every_kimg=0.016", "train.snapshot_every_kimg=0.032",
        "train.lr_schedule.decay_start_kimg=0.016", f"train.out_dir={tmp_path}", "train.tensorboard=false",
        "train.progress_bar=false", "train.threads=1"])
    run = genlab.train(config)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert {"G/cycle_ABA", "G/cycle_BAB", "G/identity_A", "D/D_B(G_AB(a))"} <= stats[-1].keys()
    assert all(math.isfinite(v) for record in stats for v in record.values())
    assert stats[-1]["lr/G"] < stats[0]["lr/G"]  # the linear decay over the second half
    assert genlab.load(run, role="G_BA").translate(torch.zeros(1, 1, 28, 28)).shape == (1, 1, 28, 28)
