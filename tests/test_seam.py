"""The seam between the loop and the families: exact resume for every objective, phases
that train only their modules, learning-rate schedules, step state and the export."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.config import ScheduleConfig, config_from_dict
from genlab.models.protocols import is_conditional
from genlab.registry import MODELS
from genlab.runs import checkpoint as ckpt
from genlab.training.loop import _training_only
from genlab.training.schedules import lr_factor

SPRITES = {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64}
TRAIN = {"batch_size": 32, "log_every_kimg": 0.064, "snapshot_every_kimg": 0.256, "checkpoint_every_kimg": 0.256,
         "progress_bar": False, "tensorboard": False}

# One small run per objective and conditioning; data "mnist" is filled in from ../shared/data.
CASES = {
    "vae": (SPRITES, {"name": "conv_vae", "latent_dim": 4, "channels": 8}, {"name": "vae", "beta": 4.0}),
    "cvae": ("mnist", {"name": "vae_mlp", "hidden": 64, "latent_dim": 4, "conditional": True}, {"name": "vae"}),
    "gan_k2_ema": (SPRITES, {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8},
                   {"name": "gan", "n_critic": 2, "ema_decay": 0.99}),
    "wgan_gp": (SPRITES, {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8, "d_norm": "none"},
                {"name": "gan", "loss": "wgan_gp", "n_critic": 4}),
    "classifier": ("mnist", {"name": "mnist_classifier", "channels": 4, "feature_dim": 16}, {"name": "classifier"}),
    "cgan": ("mnist", {"name": "gan_mlp", "conditional": True, "g_hidden": 64, "g_label_hidden": 16, "d_units": 16},
             {"name": "gan", "ema_decay": 0.9}),
    "projection": ("mnist", {"name": "sngan_projection", "latent_dim": 15, "g_channels": 8, "d_channels": 8,
                             "attention_resolution": 14, "shared_embedding": True, "hierarchical_latent": True},
                   {"name": "gan", "loss": "hinge", "n_critic": 2, "ortho_weight": 1e-4}),
    # Per-layer noise, mixing regularisation, lazy R1 and path-length counters, the path-length target.
    "stylegan": ({**SPRITES, "image_size": 32}, {"name": "stylegan", "latent_dim": 8, "w_dim": 8, "mapping_layers": 2, "g_channels": 4,
                           "d_channels": 4, "max_channels": 16},
                 {"name": "gan", "r1_weight": 1.0, "r1_every": 2, "pl_weight": 2.0, "pl_every": 2, "betas": [0.0, 0.99]}),
    # Stages of 100 images: the stop at 320 falls mid-way through the fade-in of 16x16 (300..400).
    "progan": ({**SPRITES, "image_size": 32}, {"name": "progan", "latent_dim": 8, "g_channels": 4, "d_channels": 4,
                                               "max_channels": 16, "stage_kimg": 0.1},
               {"name": "gan", "r1_weight": 1.0}),
    # Captions through G and D, the matching-aware term (rolled captions), conditioning augmentation's KL.
    "text_gan": ({"name": "captioned", "base": {"name": "sprites", "color": True, "image_size": 32, "n_train": 512,
                                                "n_test": 64}},
                 {"name": "text_gan", "noise_dim": 8, "c_dim": 4, "text_dim": 8, "g_channels": 4, "d_channels": 4},
                 {"name": "gan", "matching_aware": True, "ema_decay": 0.99}),
    # Dropout is G's noise (global RNG while training): resume must restore it.
    "pix2pix": ({"name": "pairs", "kind": "edges", "base": {"name": "color_sprites", "image_size": 32, "n_train": 512,
                                                            "n_test": 64}},
                {"name": "pix2pix", "g_channels": 4, "d_channels": 4}, {"name": "pix2pix"}),
    # A pool of 4 fakes per domain is full after the first batch: resume must restore its images and its generator.
    "cyclegan": ({"name": "unpaired", "a": {**SPRITES, "image_size": 32}, "b": {"name": "color_sprites", "image_size": 32,
                                                                              "n_train": 512, "n_test": 64}},
                 {"name": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4}, {"name": "cyclegan", "pool_size": 4}),
}


def case_config(case: str, out_dir, mnist_root, **train) -> genlab.Config:
    data, model, objective = CASES[case]
    if data == "mnist":
        data = {"name": "mnist", "root": str(mnist_root), "limit": 512}
    return config_from_dict({"name": case, "data": data, "model": model, "objective": objective,
                             "train": {**TRAIN, "kimg": 0.512, "out_dir": str(out_dir), **train}})


def final(run_dir) -> tuple[dict, dict, dict]:
    latest = ckpt.latest_checkpoint(run_dir)
    return load_file(latest / ckpt.MODULES_FILE), load_file(latest / ckpt.EXPORT_WEIGHTS), ckpt.load_training_state(latest)


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), where


# The cases that take over 2 s (bigger networks, two domains) run in the slow tier.
SLOW_CASES = {"stylegan", "progan", "text_gan", "pix2pix", "cyclegan", "projection"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES])
def test_every_objective_resumes_bitwise_exactly(case, tmp_path, mnist_root):
    straight = genlab.train(case_config(case, tmp_path / "a", mnist_root))
    # Stop off the checkpoint cadence and mid-epoch (at 320 or 384 of 512 images), then resume from the folder alone.
    stopped = genlab.train(case_config(case, tmp_path / "b", mnist_root), stop_after_kimg=0.3)
    assert genlab.train(resume=stopped) == stopped
    (modules_a, export_a, state_a), (modules_b, export_b, state_b) = final(straight), final(stopped)
    assert state_a["images_seen"] == state_b["images_seen"] == 512
    assert_same(modules_a, modules_b, "modules")
    assert_same(export_a, export_b, "export")
    assert_same(state_a["optimizers"], state_b["optimizers"], "optimizers")
    assert_same(state_a["step"], state_b["step"], "step state")  # EMA counters, health history


def test_load_builds_only_the_exported_model(tmp_path, mnist_root):
    run_dir = genlab.train(case_config("cgan", tmp_path, mnist_root, kimg=0.128))
    built = []
    entry = MODELS.get("gan_mlp")
    real_builder = entry.builder

    def watched(cfg, spec):
        return {role: (lambda role=role, make=make: built.append(role) or make()) for role, make in real_builder(cfg, spec).items()}

    object.__setattr__(entry, "builder", watched)
    try:
        G = genlab.load(run_dir)
    finally:
        object.__setattr__(entry, "builder", real_builder)
    assert built == ["G"] and not G.training and is_conditional(G)
    step = genlab.load_step(run_dir)
    assert_same(G.state_dict(), step.modules["G_ema"].state_dict(), "export = EMA weights")
    info, _ = ckpt.read_export(ckpt.latest_checkpoint(run_dir))
    assert info["role"] == "G" and info["data"]["spec"]["label"]["kind"] == "classes"
    digits = G.sample(10, generator=torch.Generator().manual_seed(0), labels=torch.arange(10))
    assert digits.shape == (10, 1, 28, 28)


def test_a_phase_restores_requires_grad_even_when_its_loss_raises(tmp_path, mnist_root):
    step = genlab.load_step(genlab.train(case_config("gan_k2_ema", tmp_path, mnist_root, kimg=0.064)))
    g_phase = step.phases()[1]
    with pytest.raises(RuntimeError, match="boom"):
        with _training_only(step, g_phase, wrapped={}):
            assert not any(p.requires_grad for p in step.modules["D"].parameters())
            raise RuntimeError("boom")
    assert all(p.requires_grad for p in step.modules["D"].parameters())
    assert not any(p.requires_grad for p in step.modules["G_ema"].parameters())  # frozen stays frozen
    assert step.nets is step.modules


def test_schedules_are_pure_functions_of_progress():
    total = 100_000
    assert lr_factor(ScheduleConfig(), 50_000, total) == 1.0
    linear = ScheduleConfig(kind="linear", decay_start_kimg=50)  # CycleGAN: constant, then linear to 0
    assert [lr_factor(linear, k * 1000, total) for k in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    cosine = ScheduleConfig(kind="cosine", warmup_kimg=10, final_fraction=0.1)
    assert lr_factor(cosine, 5_000, total) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.05))))
    assert lr_factor(cosine, total, total) == pytest.approx(0.1)


def test_the_loop_schedules_each_optimiser(tmp_path, mnist_root):
    config = case_config("gan_k2_ema", tmp_path, mnist_root, kimg=0.256, log_every_kimg=0.096,
                         lr_schedules={"G": {"kind": "linear"}})
    run_dir = genlab.train(config)
    opt = ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))["optimizers"]
    assert opt["D"]["param_groups"][0]["lr"] == pytest.approx(2e-4)  # constant
    g_lr = opt["G"]["param_groups"][0]
    # The last step's rate was set before its images: 1 - 192/256 of the base rate.
    assert g_lr["initial_lr"] == pytest.approx(2e-4) and g_lr["lr"] == pytest.approx(2e-4 * (1 - 192 / 256))
    with pytest.raises(genlab.errors.ConfigError, match="optimisers \\['E'\\]"):
        genlab.train(case_config("gan_k2_ema", tmp_path, mnist_root, lr_schedules={"E": {"kind": "linear"}}))
