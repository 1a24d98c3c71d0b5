"""train.max_minutes: a wall-clock stop that checkpoints and resumes exactly, as stop_after_kimg does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.config import config_from_dict
from genlab.errors import ConfigError
from genlab.runs import checkpoint as ckpt

BATCH = 32


def tiny_config(out_dir: Path, **train) -> genlab.Config:
    return config_from_dict({
        "name": "tiny",
        "data": {"name": "sprites", "image_size": 28, "n_train": 256, "n_test": 32},
        "model": {"name": "conv_vae", "latent_dim": 4, "channels": 8},
        "objective": {"name": "vae"},
        "train": {"kimg": 0.256, "batch_size": BATCH, "out_dir": str(out_dir), "log_every_kimg": 0.128,
                  "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0, "progress_bar": False,
                  "tensorboard": False, "threads": 1, **train},
    })


def test_timed_out_run_checkpoints_logs_and_resumes_bitwise(tmp_path):
    snapshots = {"snapshot_every_kimg": 0.128}
    straight = genlab.train(tiny_config(tmp_path / "a", **snapshots))
    # A budget far below one iteration: the loop stops after its first iteration.
    stopped = genlab.train(tiny_config(tmp_path / "b", max_minutes=1e-9, **snapshots))
    state = ckpt.load_training_state(ckpt.latest_checkpoint(stopped))
    assert state["images_seen"] == BATCH
    records = [json.loads(line) for line in (stopped / "stats.jsonl").read_text().splitlines()]
    assert records[-1]["kimg"] == BATCH / 1000  # the stop writes the last window, like the end of a run
    assert "train.max_minutes=1e-09 ran out" in (stopped / "log.txt").read_text()
    assert (stopped / "samples" / "samples-latest.png").is_file()  # and shows where it stopped

    resumed = genlab.train(tiny_config(tmp_path / "b", **snapshots), resume=stopped)  # max_minutes back to 0
    a = load_file(ckpt.latest_checkpoint(straight) / ckpt.MODULES_FILE)
    b = load_file(ckpt.latest_checkpoint(resumed) / ckpt.MODULES_FILE)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_no_budget_runs_to_the_end(tmp_path):
    run_dir = genlab.train(tiny_config(tmp_path, max_minutes=0))
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))["images_seen"] == 256


def test_negative_budget_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.max_minutes must be >= 0"):
        tiny_config(tmp_path, max_minutes=-1)
