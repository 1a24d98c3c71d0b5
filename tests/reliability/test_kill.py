"""kill -9 at random moments, checkpoint writes included: every resume succeeds and ends bitwise equal to a straight run.

A checkpoint is written every iteration; every other kill waits for one to be half-written
(its .tmp- folder present), the others strike at a random moment. Each kill costs a process
start (a few seconds), so the default is short: GENLAB_KILLS (per family, default 2) and
GENLAB_KILL_FAMILIES (default vae; vae,gan for both) make it longer, e.g.
GENLAB_KILLS=10 GENLAB_KILL_FAMILIES=vae,gan for 20 kills.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli.main import main
from genlab.config import load_config
from genlab.training import checkpoint as ckpt

pytestmark = pytest.mark.reliability

KILLS = int(os.environ.get("GENLAB_KILLS", "2"))
FAMILIES = os.environ.get("GENLAB_KILL_FAMILIES", "vae").split(",")
MODELS = {
    "vae": "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n",
    "gan": "model: {name: dcgan, latent_dim: 8, g_channels: 8, d_channels: 8}\nobjective: {name: gan, n_critic: 2}\n",
}
IMAGES_PER_ITERATION = {"vae": 32, "gan": 64}  # a GAN iteration draws n_critic = 2 batches of 32


def total_images(family: str) -> int:
    """Long enough for every kill to find the run unfinished: a kill lets it advance a few iterations."""
    return IMAGES_PER_ITERATION[family] * 8 * KILLS


def recipe(tmp_path: Path, family: str) -> Path:
    path = tmp_path / f"{family}.yaml"
    path.write_text(
        f"name: kill\ndata: {{name: sprites, image_size: 28, n_train: 256, n_test: 64}}\n{MODELS[family]}"
        f"train: {{kimg: {total_images(family) / 1000}, batch_size: 32, out_dir: {tmp_path / 'runs'}, log_every_kimg: 0.032, "
        "snapshot_every_kimg: 0, checkpoint_every_kimg: 0.032, keep_checkpoints: 2, progress_bar: false, "
        "tensorboard: false, threads: 1}\n"
    )
    return path


def images_checkpointed(run: Path) -> int:
    found = ckpt.list_checkpoints(run / "checkpoints")
    return int(found[-1].name.removeprefix(ckpt.PREFIX)) if found else 0


@pytest.mark.parametrize("family", FAMILIES)
def test_kill_9_at_random_moments_then_resume_is_bitwise_exact(tmp_path, family):
    config = recipe(tmp_path, family)
    straight = genlab.train(load_config(config, [f"train.out_dir={tmp_path / 'straight'}"]))
    run, rng, mid_write = tmp_path / "runs" / "00000-kill", random.Random(family), 0
    for kill in range(KILLS):
        args = ["train", str(config)] if kill == 0 else ["train", "--resume", str(run)]
        proc = subprocess.Popen([sys.executable, "-m", "genlab", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        start, deadline = images_checkpointed(run), time.time() + 120
        while images_checkpointed(run) <= start and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)  # progress first: a new checkpoint since this start
        if kill % 2:  # inside a checkpoint write
            while not any((run / "checkpoints").glob(".tmp-*")) and proc.poll() is None and time.time() < deadline:
                time.sleep(0.001)
        else:
            time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        _, err = proc.communicate()
        assert proc.returncode in (-9, 0), err  # killed, or finished first; never failed
        mid_write += any((run / "checkpoints").glob(".tmp-*"))
        if proc.returncode == 0:
            break
    assert main(["train", "--resume", str(run)]) == 0
    print(f"{family}: {kill + 1} kills, {mid_write} inside a checkpoint write")
    final, reference = (ckpt.good_checkpoint(r)[0] for r in (run, straight))
    assert final.name == reference.name == f"{ckpt.PREFIX}{total_images(family):012d}"
    a, b = (load_file(c / ckpt.MODULES_FILE) for c in (final, reference))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in b)
    assert not list((run / "checkpoints").glob(".tmp-*"))
