"""Fixtures of the studio tests: tiny trained runs (seconds each, no download), the app over
them, and a live server on a free loopback port for the browser."""

from __future__ import annotations

import socket
import threading
import time
import warnings

import pytest

import genlab
from genlab.config import config_from_dict

TRAIN = {"batch_size": 16, "log_every_kimg": 0.064, "snapshot_every_kimg": 10, "checkpoint_every_kimg": 10,
         "progress_bar": False, "tensorboard": False, "threads": 1}
SPRITES = {"name": "color_sprites", "image_size": 32, "n_train": 256, "n_test": 32}
RUNS = {  # studio index -> what it is; the order is the order the studio serves them in
    "vae": {"data": SPRITES, "model": {"name": "conv_vae", "latent_dim": 6, "channels": 8},
            "objective": {"name": "vae"}, "kimg": 0.512},
    "cgan": {"data": {"name": "mnist", "limit": 512, "download": False},  # root: the mnist_root fixture
             "model": {"name": "gan_mlp", "conditional": True, "latent_dim": 8, "g_hidden": 64, "g_label_hidden": 16,
                       "d_units": 16, "d_pieces": 2, "d_label_units": 8},
             "objective": {"name": "gan"}, "kimg": 0.256},
    "edges": {"data": {"name": "pairs", "kind": "edges", "base": SPRITES},
              "model": {"name": "pix2pix", "g_channels": 4, "d_channels": 4}, "objective": {"name": "pix2pix"},
              "kimg": 0.128},
    "labels": {"data": {"name": "pairs", "kind": "labels", "base": SPRITES},
               "model": {"name": "pix2pix", "g_channels": 4, "d_channels": 4}, "objective": {"name": "pix2pix"},
               "kimg": 0.128},
    "style": {"data": SPRITES, "model": {"name": "stylegan", "latent_dim": 8, "w_dim": 8, "mapping_layers": 2,
                                         "g_channels": 4, "d_channels": 4, "max_channels": 16},
              "objective": {"name": "gan", "betas": [0.0, 0.99]}, "kimg": 0.064},
    "text": {"data": {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 64, "n_test": 8}},
             "model": {"name": "text_gan", "noise_dim": 2, "c_dim": 8, "text_dim": 16, "g_channels": 4, "d_channels": 4},
             "objective": {"name": "gan", "matching_aware": True}, "kimg": 0.064},
    "flow": {"data": {"name": "mnist", "limit": 512, "download": False},
             "model": {"name": "flow_matching", "channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1,
                       "steps": 4, "conditional": True},
             "objective": {"name": "diffusion"}, "kimg": 0.128},
    "text_flow": {"data": {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 64, "n_test": 8}},
                  "model": {"name": "flow_matching", "channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1,
                            "steps": 2, "text": True, "text_dim": 8},
                  "objective": {"name": "diffusion"}, "kimg": 0.064},
    "glow": {"data": SPRITES, "model": {"name": "glow", "levels": 2, "steps": 1, "hidden": 8},
             "objective": {"name": "likelihood"}, "kimg": 0.064},
    "vqvae": {"data": SPRITES, "model": {"name": "vqvae", "levels": 4, "codes": 8, "code_dim": 4, "channels": 8,
                                         "res_blocks": 1, "prior_channels": 8, "prior_layers": 2,
                                         "autoencoder_kimg": 0.032},
              "objective": {"name": "vqvae"}, "kimg": 0.064},
    "spade": {"data": SPRITES, "model": {"name": "spade", "g_channels": 2, "z_dim": 4, "hidden": 4, "d_channels": 4,
                                         "d_layers": 2},
              "objective": {"name": "spade"}, "kimg": 0.032},
}
INDEX = {name: i for i, name in enumerate(RUNS)}


@pytest.fixture(scope="session")
def studio_runs(tmp_path_factory, mnist_root) -> list:
    """Run folders of RUNS, in order."""
    out = tmp_path_factory.mktemp("studio-runs")
    runs = []
    for name, spec in RUNS.items():
        data = {**spec["data"], "root": str(mnist_root)} if spec["data"]["name"] == "mnist" else spec["data"]
        config = config_from_dict({"name": name, "data": data, "model": spec["model"],
                                   "objective": spec["objective"],
                                   "train": {**TRAIN, "kimg": spec["kimg"], "out_dir": str(out)}})
        runs.append(genlab.train(config))
    return runs


LOCAL = "http://127.0.0.1"


@pytest.fixture(scope="session")
def studio_app(studio_runs):
    from genlab.studio.app import create_app

    return create_app(studio_runs)


@pytest.fixture(scope="session")
def client(studio_app):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using .httpx. with .starlette.testclient.")  # about httpx's successor
        from fastapi.testclient import TestClient
    with TestClient(studio_app, base_url=LOCAL) as c:  # the studio answers only to its own names
        yield c


def serve(app):
    """``app`` served by uvicorn in a thread on a free 127.0.0.1 port, as a real user's browser sees it: yields
    its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the studio server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def studio_url(studio_app) -> str:
    """The studio over RUNS, served (:func:`serve`)."""
    yield from serve(studio_app)


@pytest.fixture(scope="session")
def zoo_url() -> str:
    """The studio over every generator of the zoo, as ``genlab studio --zoo`` serves it."""
    from genlab.runs.zoo import generators
    from genlab.studio.app import create_app

    yield from serve(create_app([f"zoo:{entry.name}" for entry in generators()]))
