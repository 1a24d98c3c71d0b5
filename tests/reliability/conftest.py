"""Fixtures of the reliability suite: one tiny finished run, copied for each test that damages it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import genlab
from genlab.config import Config, config_from_dict

# Property-based tests: the same examples on every run (CI is reproducible), no example database in the
# working tree, no per-example deadline on a busy machine; each test sets its own number of examples,
# times GENLAB_FUZZ_SCALE (e.g. 10 for a longer search; a new seed needs a change of test or hypothesis).
FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FUZZ_SCALE = float(os.environ.get("GENLAB_FUZZ_SCALE", "1"))


def fuzz_examples(n: int) -> settings:
    return settings(FUZZ, max_examples=max(1, int(n * FUZZ_SCALE)))


VAE = ({"name": "conv_vae", "latent_dim": 4, "channels": 8}, {"name": "vae"})
GAN = ({"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8}, {"name": "gan"})


def tiny_config(out_dir: Path, family: tuple[dict, dict] = VAE, **train) -> Config:
    """A VAE (or ``family``'s model and objective) on 256 sprites: 4 iterations of 32 images, a checkpoint every 64."""
    return config_from_dict({
        "name": "rel",
        "data": {"name": "sprites", "image_size": 28, "n_train": 256, "n_test": 64},
        "model": family[0],
        "objective": family[1],
        "train": {"kimg": 0.128, "batch_size": 32, "out_dir": str(out_dir), "log_every_kimg": 0.064,
                  "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0.064, "keep_checkpoints": 3,
                  "progress_bar": False, "tensorboard": False, "threads": 1, **train},
    })


@pytest.fixture(scope="session")
def pristine_run(tmp_path_factory) -> Path:
    """A finished run with checkpoints ckpt-000000000064 and ckpt-000000000128; never modified."""
    return genlab.train(tiny_config(tmp_path_factory.mktemp("pristine")))


@pytest.fixture(scope="session")
def translator(tmp_path_factory) -> Path:
    """A pix2pix run of one iteration: 32 colour sprites as edges -> image pairs, 32 x 32 RGB."""
    return genlab.train(config_from_dict({
        "name": "translator",
        "data": {"name": "pairs", "kind": "edges",
                 "base": {"name": "color_sprites", "image_size": 32, "n_train": 32, "n_test": 8}},
        "model": {"name": "pix2pix", "g_channels": 4, "d_channels": 4}, "objective": {"name": "pix2pix"},
        "train": {"kimg": 0.032, "batch_size": 32, "out_dir": str(tmp_path_factory.mktemp("translator")),
                  "snapshot_every_kimg": 0, "progress_bar": False, "tensorboard": False, "threads": 1},
    }))


@pytest.fixture
def run(pristine_run, tmp_path) -> Path:
    """A copy of the pristine run that a test may damage."""
    return Path(shutil.copytree(pristine_run, tmp_path / "runs" / pristine_run.name))
