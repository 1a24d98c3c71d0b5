"""kill -9 at random moments, checkpoint writes included: every resume succeeds and ends bitwise equal to a straight run.

A checkpoint is written every iteration; every other kill waits for one to be half-written
(its .tmp- folder present), the others strike at a random moment. Each kill costs a process
start (a few seconds), so the default is short: GENLAB_KILLS (per family, default 2) and
GENLAB_KILL_FAMILIES (default vae; any of vae,gan,pix2pix,cyclegan,diffusion) make it longer, e.g.
GENLAB_KILLS=6 GENLAB_KILL_FAMILIES=vae,gan,pix2pix,cyclegan,diffusion for 30 kills.
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
from genlab.runs import checkpoint as ckpt

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

KILLS = int(os.environ.get("GENLAB_KILLS", "2"))
FAMILIES = os.environ.get("GENLAB_KILL_FAMILIES", "vae").split(",")
SPRITES = "{name: sprites, image_size: 28, n_train: 256, n_test: 64}"
SPRITES_32 = "{name: sprites, image_size: 32, n_train: 256, n_test: 64}"
COLOUR_32 = "{name: color_sprites, image_size: 32, n_train: 256, n_test: 64}"
# family: (data, model and objective, images per iteration of batches of 32), tiny as in tests/test_seam.py
RECIPES = {
    "vae": (SPRITES, "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n", 32),
    "gan": (SPRITES, "model: {name: dcgan, latent_dim: 8, g_channels: 8, d_channels: 8}\n"
                     "objective: {name: gan, n_critic: 2}\n", 64),  # D draws n_critic = 2 batches
    # G's dropout draws from the global RNG: a resume must restore it
    "pix2pix": (f"{{name: pairs, kind: edges, base: {COLOUR_32}}}",
                "model: {name: pix2pix, g_channels: 4, d_channels: 4}\nobjective: {name: pix2pix}\n", 32),
    # the image pool (4 fakes per domain) is part of the step's state
    "cyclegan": (f"{{name: unpaired, a: {SPRITES_32}, b: {COLOUR_32}}}",
                 "model: {name: cyclegan, g_channels: 4, g_blocks: 1, d_channels: 4}\n"
                 "objective: {name: cyclegan, pool_size: 4}\n", 32),
    # the times, the noise and the dropped labels all come from the global RNG; the EMA's count is step state
    "diffusion": (SPRITES, "model: {name: flow_matching, channels: 8, channel_mult: [1, 2], blocks_per_level: 1, "
                           "steps: 2}\nobjective: {name: diffusion}\n", 32),
}


def total_images(family: str) -> int:
    """Long enough for every kill to find the run unfinished: a kill lets it advance a few iterations."""
    return RECIPES[family][2] * 8 * KILLS


def recipe(tmp_path: Path, family: str) -> Path:
    path = tmp_path / f"{family}.yaml"
    data, sections, _ = RECIPES[family]
    path.write_text(
        f"name: kill\ndata: {data}\n{sections}"
        f"train: {{kimg: {total_images(family) / 1000}, batch_size: 32, out_dir: {tmp_path / 'runs'}, log_every_kimg: 0.032, "
        "snapshot_every_kimg: 0, checkpoint_every_kimg: 0.032, keep_checkpoints: 2, progress_bar: false, "
        # cpu_linear pinned: each process times the BLAS against oneDNN once (train.cpu_linear=auto), and on a loaded
        # machine the straight run and the first killed process can choose differently, which changes the rounding.
        "tensorboard: false, threads: 1, cpu_linear: blas}\n"
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
