"""The one training loop: exact resume, divergence stops, signals, run folders, CLI smoke runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli.main import main
from genlab.config import config_from_dict
from genlab.errors import TrainingDiverged
from genlab.runs import checkpoint as ckpt
from genlab.runs.folder import create_run_dir, newest_run_dir, read_records
from genlab.training.objectives.vae import VAEStep
from genlab.training.step import LossOutput


def sprites_config(out_dir: Path, **train) -> genlab.Config:
    return config_from_dict({
        "name": "tiny",
        "data": {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
        "model": {"name": "conv_vae", "latent_dim": 4, "channels": 8},
        "objective": {"name": "vae"},
        "train": {"kimg": 1.024, "batch_size": 32, "out_dir": str(out_dir), "log_every_kimg": 0.128,
                  "snapshot_every_kimg": 0.512, "checkpoint_every_kimg": 0.256, "progress_bar": False,
                  "tensorboard": False, **train},
    })


def final_state(run_dir: Path) -> tuple[dict, dict]:
    latest = ckpt.latest_checkpoint(run_dir)
    return load_file(latest / ckpt.MODULES_FILE), ckpt.load_training_state(latest)


def test_stopped_and_resumed_run_is_bitwise_identical_to_an_uninterrupted_one(tmp_path):
    straight = genlab.train(sprites_config(tmp_path / "a"))
    # Stop mid-epoch, off the checkpoint cadence, then resume from the run folder alone.
    stopped = genlab.train(sprites_config(tmp_path / "b"), stop_after_kimg=0.416)
    assert final_state(stopped)[1]["images_seen"] == 416
    resumed = genlab.train(resume=stopped)
    assert resumed == stopped
    weights_a, state_a = final_state(straight)
    weights_b, state_b = final_state(resumed)
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    adam_a, adam_b = state_a["optimizers"]["vae"]["state"], state_b["optimizers"]["vae"]["state"]
    assert all(torch.equal(adam_a[i]["exp_avg_sq"], adam_b[i]["exp_avg_sq"]) for i in adam_a)
    assert state_a["images_seen"] == state_b["images_seen"] == 1024


def test_channels_last_runs_resume_bitwise_and_keep_their_layout(tmp_path):
    """train.memory_format=channels_last: conv weights and image batches in NHWC, checkpoints as ever."""
    def config(out_dir):
        return config_from_dict({
            "name": "tiny-gan", "data": {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
            "model": {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8, "d_norm": "none"},
            "objective": {"name": "gan", "ema_decay": 0.9, "regularisers": [{"name": "r1", "every": 2}]},
            "train": {"kimg": 0.512, "batch_size": 32, "out_dir": str(out_dir), "memory_format": "channels_last",
                      "log_every_kimg": 0.128, "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0.256,
                      "progress_bar": False, "tensorboard": False},
        })

    straight = genlab.train(config(tmp_path / "a"))
    stopped = genlab.train(config(tmp_path / "b"), stop_after_kimg=0.2)
    genlab.train(resume=stopped)
    (weights_a, state_a), (weights_b, state_b) = final_state(straight), final_state(stopped)
    assert state_a["images_seen"] == state_b["images_seen"] == 512
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    step = genlab.load_step(stopped)
    convs = [m.weight for m in step.modules["D"].modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)


def test_run_folder_describes_itself(tmp_path):
    run_dir = genlab.train(sprites_config(tmp_path, kimg=0.256, keep_checkpoints=2))
    assert run_dir.name == "00000-tiny"
    for name in ("config.yaml", "data.json", "log.txt", "stats.jsonl"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert records[-1]["kimg"] == pytest.approx(0.256)
    assert {"vae/loss", "vae/kl", "vae/recon_nll", "vae/grad_norm", "images_per_sec"} <= records[-1].keys()
    for name in ("samples-latest", "reconstructions-latest", "traversal-latest", "samples-progress"):
        assert (run_dir / "samples" / f"{name}.png").is_file(), name
    assert len(ckpt.list_checkpoints(run_dir / "checkpoints")) == 1
    assert genlab.train(sprites_config(tmp_path, kimg=0.064)).name == "00001-tiny"


def test_a_record_still_being_written_is_not_read(tmp_path):
    """Every reader of stats.jsonl and metrics.jsonl (info, the studio's monitor, the zoo's headline and pack,
    a classifier's recorded accuracy) goes through read_records, which skips a last line without its newline."""
    path = tmp_path / "metrics.jsonl"
    assert read_records(path) == []
    path.write_text('{"kimg": 1.0}\n{"kimg": 2.0}\n{"kimg": 3')
    assert read_records(path) == [{"kimg": 1.0}, {"kimg": 2.0}]


def test_keeps_only_the_newest_checkpoints(tmp_path):
    run_dir = genlab.train(sprites_config(tmp_path, keep_checkpoints=2))
    names = [p.name for p in ckpt.list_checkpoints(run_dir / "checkpoints")]
    assert names == ["ckpt-000000000768", "ckpt-000000001024"]


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = VAEStep.loss
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        out = real_loss(self, batch)
        return LossOutput(out.loss * float("nan"), out.stats) if calls["n"] > 10 else out

    monkeypatch.setattr(VAEStep, "loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"vae loss became nan at iteration 10 \(0\.4 kimg\)"):
        genlab.train(sprites_config(tmp_path, checkpoint_every_kimg=0.128))
    run_dir = next(tmp_path.iterdir())
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest.name == "ckpt-000000000256"
    weights = load_file(latest / ckpt.MODULES_FILE)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    assert "ERROR: vae loss became nan at iteration 10" in (run_dir / "log.txt").read_text()


def test_resume_refuses_a_config_that_would_break_exactness(tmp_path):
    run_dir = genlab.train(sprites_config(tmp_path, kimg=0.128))
    changed = sprites_config(tmp_path, kimg=0.256, batch_size=16)
    with pytest.raises(genlab.errors.ConfigError, match="different train.batch_size"):
        genlab.train(changed, resume=run_dir)
    longer = genlab.train(sprites_config(tmp_path, kimg=0.256), resume=run_dir)  # only kimg grows: fine
    assert final_state(longer)[1]["images_seen"] == 256


def test_a_dry_run_of_a_resume_with_a_config_file_checks_it_as_the_resume_would(tmp_path, capsys):
    """`genlab train FILE --resume RUN --dry-run` prints what the resumed run will use, or refuses as it would."""
    import yaml

    from genlab.config import config_to_dict

    run_dir = genlab.train(sprites_config(tmp_path, kimg=0.128))
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(config_to_dict(sprites_config(tmp_path, kimg=0.256, batch_size=16))))
    assert main(["train", str(file), "--resume", str(run_dir), "--dry-run"]) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(["train", str(file), "--resume", str(run_dir), "--dry-run", "--set", "train.batch_size=32"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["kimg"] == 0.256


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: sig\ndata: {name: sprites, image_size: 28, n_train: 512, n_test: 64}\n"
        "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n"
        f"train: {{kimg: 1000, batch_size: 32, out_dir: {tmp_path / 'runs'}, log_every_kimg: 0.064, "
        "checkpoint_every_kimg: 1000, progress_bar: false, tensorboard: false}\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genlab", "train", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = tmp_path / "runs" / "00000-sig"
    deadline = time.time() + 60
    while not ((run_dir / "stats.jsonl").is_file() and (run_dir / "stats.jsonl").read_text()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "continue with: genlab train --resume" in output
    images = final_state(run_dir)[1]["images_seen"]
    assert 0 < images < 1_000_000
    # The checkpoint it left resumes: a few more images, then a clean finish.
    target_kimg = (images + 128) / 1000
    assert main(["train", "--resume", str(run_dir), "--set", f"train.kimg={target_kimg}"]) == 0
    assert final_state(run_dir)[1]["images_seen"] == images + 128


def test_cli_train_sample_info_eval_on_sprites(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: cli\ndata: {name: sprites, image_size: 32, n_train: 256, n_test: 64}\n"
        "model: {name: conv_vae, latent_dim: 3, channels: 8}\nobjective: {name: vae}\n"
        f"train: {{kimg: 0.128, batch_size: 32, out_dir: {tmp_path}, progress_bar: false, tensorboard: false}}\n"
    )
    assert main(["train", str(config)]) == 0
    run_dir = tmp_path / "00000-cli"
    assert main(["sample", str(run_dir), "-n", "9", "-o", str(tmp_path / "g.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size == (3 * 34 + 2, 3 * 34 + 2)  # 3x3 grid, 2-pixel padding
    assert main(["info", str(run_dir)]) == 0
    assert "0.128 of 0.128 kimg" in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--n", "32", "--k", "10"]) == 0
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["iw_k"] == 10 and record["n_images"] == 32
    assert record["iw_nll_nats"] <= -record["elbo_nats"] + 3 * record["elbo_se"]


def test_vae_trains_on_real_mnist(tmp_path, mnist_root):
    config = config_from_dict({
        "name": "mnist-smoke",
        "data": {"name": "mnist", "root": str(mnist_root), "limit": 2048},
        "model": {"name": "vae_mlp"},
        "objective": {"name": "vae"},
        "train": {"kimg": 4.096, "batch_size": 128, "out_dir": str(tmp_path), "log_every_kimg": 1.024,
                  "snapshot_every_kimg": 4.096, "checkpoint_every_kimg": 4.096, "progress_bar": False, "tensorboard": False},
    })
    run_dir = genlab.train(config)
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    # Summed BCE + KL of an untrained model is ~550 nats; 32 steps on real digits must cut it well down.
    assert records[0]["vae/loss"] > records[-1]["vae/loss"]
    assert records[-1]["vae/loss"] < 250
    vae = genlab.load(run_dir)
    assert vae.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_torchrun_trains_one_run_across_two_processes(family, tmp_path):
    model, objective = {
        "vae": ("{name: conv_vae, latent_dim: 4, channels: 8}", "{name: vae}"),
        # A GAN with k = 2: D and G phases each synchronise only the module they train.
        "gan": ("{name: dcgan, latent_dim: 8, g_channels: 8, d_channels: 8}", "{name: gan, n_critic: 2}"),
    }[family]
    config = tmp_path / "c.yaml"
    config.write_text(
        f"name: ddp\ndata: {{name: sprites, image_size: 28, n_train: 512, n_test: 64}}\n"
        f"model: {model}\nobjective: {objective}\n"
        f"train: {{kimg: 0.256, batch_size: 16, out_dir: {tmp_path / 'runs'}, log_every_kimg: 0.128, "
        "checkpoint_every_kimg: 0.128, progress_bar: false, tensorboard: false, threads: 1}\n"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    done = subprocess.run([*torchrun, "-m", "genlab", "train", str(config)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "00000-ddp"  # one folder, made by rank 0 alone
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["00000-ddp"]
    state = final_state(run_dir)[1]
    assert state["images_seen"] == 256  # 8 iterations x 16 images x 2 processes (GAN: 4 iterations x 2 D batches)
    assert len(state["data"]) == len(state["rng"]) == 2  # every rank's position, for exact resume
    model = genlab.load(run_dir)
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)


def test_run_folders_are_numbered_and_the_newest_is_the_highest_number(tmp_path):
    assert newest_run_dir(tmp_path / "absent") is None and newest_run_dir(tmp_path) is None
    (tmp_path / "notes").mkdir()
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "1234-short").mkdir()  # not five digits: not a run folder
    made = create_run_dir(tmp_path, "a b/c")
    assert made.name == "00008-a-b-c" and newest_run_dir(tmp_path) == made
