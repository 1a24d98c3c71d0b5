"""Data-parallel training under torchrun (gloo on CPU): the global batch, and train.sync_batchnorm."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import genlab
from genlab.config import config_from_dict
from genlab.data import load_dataset
from genlab.models import build_model
from genlab.runs import checkpoint as ckpt
from genlab.training.loop import _sync_batchnorm, build_step

# --standalone: torchrun picks a free port itself, so these runs never meet another test's (29517).
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]

pytestmark = pytest.mark.slow  # torchrun starts processes: the slow tier (make test-slow)


def torchrun_train(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([*TORCHRUN, "-m", "genlab", "train", str(path)], capture_output=True, text=True, timeout=240)


def train_section(out_dir: Path, **train) -> dict:
    return {"out_dir": str(out_dir), "log_every_kimg": 0.064, "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0,
            "progress_bar": False, "tensorboard": False, "threads": 1, **train}


def cyclegan_config(out_dir: Path, batch_size: int) -> dict:
    sprites = {"name": "sprites", "image_size": 24, "n_train": 32, "n_test": 8}
    return {
        "name": "ddp",
        "data": {"name": "unpaired", "a": sprites, "b": {**sprites, "seed": 1}},
        "model": {"name": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4, "d_receptive_field": 16},
        "objective": {"name": "cyclegan", "pool_size": 0},
        # 4 iterations of 16 images in all: two epochs of the 32 examples.
        "train": train_section(out_dir, kimg=0.064, batch_size=batch_size),
    }


def dcgan_config(out_dir: Path, **train) -> dict:
    return {
        "name": "sbn",
        "data": {"name": "sprites", "image_size": 28, "n_train": 128, "n_test": 8},
        "model": {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8},
        "objective": {"name": "gan"},
        "train": train_section(out_dir, kimg=0.064, batch_size=16, **train),
    }


def final_modules(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt.latest_checkpoint(run_dir) / ckpt.MODULES_FILE)


def initial_modules(raw: dict) -> dict[str, torch.Tensor]:
    """The weights a run of ``raw`` starts from, keyed as in a checkpoint ("G_AB.net.1.weight")."""
    config = config_from_dict(raw)
    torch.manual_seed(config.train.seed * 1000)  # as the loop seeds process 0
    step = build_step(config, load_dataset(config.data, "train").spec, torch.device("cpu"))
    return {f"{name}.{key}": t for name, m in step.modules.items() for key, t in m.state_dict().items()}


def test_two_processes_at_batch_b_train_as_one_process_at_2b(tmp_path):
    """2 processes x batch 8 and 1 process x batch 16 end with the same weights (max |diff| <= 1e-5).

    The same global batches: BatchStream draws each epoch's order from the seed alone, and rank r
    takes positions r, r + 2, ... of it, so iteration i's two shards together are positions
    [16 i, 16 i + 16), the one process's batch i (in another order, which a mean does not see);
    both drop the same partial batch at an epoch's end. The same gradients: every loss is a mean
    over equal-sized shards, and DDP averages the ranks' gradients. The same initial weights:
    DDP broadcasts rank 0's, and rank 0 draws them from the seed as one process does.

    The model must have no noise, since each rank draws its own (seeded by seed and rank): a
    VAE's reparameterisation or a GAN's latents on rank 1 are not the ones the single process
    draws for those examples. So this is CycleGAN with the history pool off (D sees the current
    fakes): deterministic generators, instance norm (each example normalised alone, unlike
    batch norm, whose statistics would be per shard) and two phases, each training two DDP
    modules through the two it leaves frozen and unwrapped.

    Equal up to rounding: sums over 8 + 8 examples and over 16 round differently (~1e-7). A GAN
    amplifies that once a ReLU's input crosses zero in one run and not the other (here, after
    about 6 iterations the difference jumps from ~1e-7 to ~1e-5 and grows), so the runs are 4 iterations long.
    """
    done = torchrun_train(cyclegan_config(tmp_path / "two", batch_size=8), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    two_dir = tmp_path / "two" / "00000-ddp"
    one_dir = genlab.train(config_from_dict(cyclegan_config(tmp_path / "one", batch_size=16)))

    for run_dir in (one_dir, two_dir):
        state = ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))
        assert (state["images_seen"], state["iteration"]) == (64, 4)
    one, two, initial = final_modules(one_dir), final_modules(two_dir), initial_modules(cyclegan_config(tmp_path, 16))
    assert one.keys() == two.keys() == initial.keys()
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    moved = max((one[k] - initial[k]).abs().max().item() for k in one)
    assert worst <= 1e-5, f"weights differ by up to {worst:.3g} (training moved them by up to {moved:.3g})"
    assert moved > 1e-4  # they did train (Adam moves a weight by up to lr = 2e-4 a step): not two untouched copies


def test_sync_batchnorm_on_cpu_processes_is_a_config_error(tmp_path):
    """torch's SyncBatchNorm runs on GPU (CUDA, XPU, ...) tensors only: several gloo processes on the
    CPU stop before training with a message naming the key and both ways out, leaving no run folder."""
    done = torchrun_train(dcgan_config(tmp_path / "runs", sync_batchnorm=True), tmp_path)
    assert done.returncode != 0
    assert "genlab: error: train.sync_batchnorm=true needs CUDA GPUs" in done.stderr
    assert "train.sync_batchnorm=false" in done.stderr and "these 2 processes train on cpu" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_sync_batchnorm_in_one_process_is_a_no_op(tmp_path, recwarn):
    """One process has no batch to share: the option trains the plain model, without a warning."""
    run_dir = genlab.train(config_from_dict(dcgan_config(tmp_path, sync_batchnorm=True)))
    assert not [w for w in recwarn if "batchnorm" in str(w.message).lower()]
    assert "WARNING" not in (run_dir / "log.txt").read_text()
    assert genlab.load(run_dir).sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


def test_sync_batchnorm_keeps_parameters_and_plain_state_dicts(tmp_path):
    """The conversion the loop applies before DDP keeps each module's parameters (the optimisers'
    tensors) and its state-dict keys, so checkpoints and exports load into the plain model."""
    config = config_from_dict(dcgan_config(tmp_path))
    spec = load_dataset(config.data, "train").spec
    step = build_step(config, spec, torch.device("cpu"))
    before = {name: list(map(id, m.parameters())) for name, m in step.modules.items()}
    _sync_batchnorm(step, {"G", "D"})

    for name in ("G", "D"):
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in step.modules[name].modules())
        assert list(map(id, step.modules[name].parameters())) == before[name]  # what the optimisers step
        plain = build_model(config.model, spec)[name]()
        synced = step.modules[name].state_dict()
        assert list(synced) == list(plain.state_dict())
        plain.load_state_dict(synced, strict=True)


def test_a_growing_progan_trains_under_torchrun(tmp_path):
    """ProGAN's not-yet-faded-in layers get no gradient in the first stages: DDP looks for such
    parameters on that model, so two processes train it through 4x4, the fade-in and 8x8."""
    config = {
        "name": "grow",
        "data": {"name": "sprites", "image_size": 8, "n_train": 64, "n_test": 8},
        "model": {"name": "progan", "latent_dim": 8, "g_channels": 4, "d_channels": 4, "max_channels": 8, "stage_kimg": 0.032},
        "objective": {"name": "gan", "regularisers": [{"name": "r1"}]},
        "train": train_section(tmp_path / "runs", kimg=0.128, batch_size=8),
    }
    done = torchrun_train(config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "00000-grow"
    state = ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))
    assert state["images_seen"] == 128
    assert "x2" in (run_dir / "log.txt").read_text()
    initial, final = initial_modules(config), final_modules(run_dir)
    grown = [k for k in final if k.startswith("G.blocks.0.")]  # the 8x8 block, faded in from 32 images on
    assert grown and any(not torch.equal(final[k], initial[k]) for k in grown)


def test_a_text_gan_with_conditioning_augmentation_trains_under_torchrun(tmp_path):
    """The conditioning-augmentation KL comes out of G's forward pass, through its DDP wrapper, so
    two processes train a text-conditioned G with it (it was refused before)."""
    config = {
        "name": "text",
        "data": {"name": "captioned", "base": {"name": "sprites", "color": True, "image_size": 32, "n_train": 64,
                                                "n_test": 8}},
        "model": {"name": "text_gan", "noise_dim": 8, "c_dim": 4, "text_dim": 8, "g_channels": 4, "d_channels": 4},
        "objective": {"name": "gan", "matching_aware": True, "ca_kl_weight": 1.0},
        "train": train_section(tmp_path / "runs", kimg=0.032, batch_size=8),
    }
    done = torchrun_train(config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = (tmp_path / "runs" / "00000-text" / "stats.jsonl").read_text().splitlines()
    assert records and '"G/condition_kl"' in records[-1]


def test_a_stylegan_with_path_length_regularisation_trains_under_torchrun(tmp_path):
    """The path lengths come out of G's forward pass, through its DDP wrapper, so two processes
    train a style-based G with the penalty (it was refused before); the target a is shared."""
    config = {
        "name": "pl",
        "data": {"name": "color_sprites", "image_size": 16, "n_train": 64, "n_test": 8},
        "model": {"name": "stylegan", "latent_dim": 8, "w_dim": 8, "mapping_layers": 1, "g_channels": 4,
                  "d_channels": 4, "max_channels": 8},
        "objective": {"name": "gan", "regularisers": [{"name": "path_length", "every": 2}], "betas": [0.0, 0.99]},
        "train": train_section(tmp_path / "runs", kimg=0.032, batch_size=8),
    }
    done = torchrun_train(config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "00000-pl"
    assert '"G/path_length"' in (run_dir / "stats.jsonl").read_text()
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))["step"]["pl_mean"] > 0


def test_a_conditional_flow_matching_model_trains_under_torchrun(tmp_path, mnist_root):
    """The diffusion step draws its times, noise and dropped labels from each process's own RNG; two
    processes train a conditional flow (guidance's "no class" row included) and export its EMA."""
    config = {
        "name": "flow",
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 64},
        "model": {"name": "flow_matching", "channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "steps": 2,
                  "conditional": True, "guidance": 2.0},
        "objective": {"name": "diffusion", "uncond_prob": 0.5},
        "train": train_section(tmp_path / "runs", kimg=0.064, batch_size=8),
    }
    done = torchrun_train(config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "00000-flow"
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))["step"]["ema_updates"] == 4  # 64 images / 16
    initial, final = initial_modules(config), final_modules(run_dir)
    assert not torch.equal(final["model.net.condition.table.weight"], initial["model.net.condition.table.weight"])


def test_a_vqvae_trains_both_stages_under_torchrun(tmp_path, mnist_root):
    """Each stage leaves the other part without gradients, which DDP is told to expect (a Staged model), and
    the codebook's collectives (counts and sums summed over processes, restarts broadcast from process 0) run
    without deadlock on two processes. That every process keeps the same codebook is not checked here: DDP
    also broadcasts process 0's buffers before each forward pass."""
    config = {
        "name": "vq",
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 64, "binarize": True, "image_size": 12},
        "model": {"name": "vqvae", "levels": 2, "codes": 8, "code_dim": 4, "channels": 8, "res_blocks": 1,
                  "prior_channels": 8, "prior_layers": 2, "autoencoder_kimg": 0.032},
        "objective": {"name": "vqvae"},
        "train": train_section(tmp_path / "runs", kimg=0.064, batch_size=8),
    }
    done = torchrun_train(config, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "00000-vq"
    stats = (run_dir / "stats.jsonl").read_text()
    assert '"model/recon_nll_nats"' in stats and '"model/prior_nll_nats"' in stats
    initial, final = initial_modules(config), final_modules(run_dir)
    assert int(final["model.stage"]) == 1
    for part in ("model.encoder.", "model.prior."):
        assert any(not torch.equal(final[k], initial[k]) for k in final if k.startswith(part)), part
