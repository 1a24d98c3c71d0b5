"""The joint caption-image embedding: its loss, its training, and text_gan's frozen use of its text encoder."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab.config import config_from_dict
from genlab.data import load_dataset
from genlab.errors import ConfigError
from genlab.losses.contrastive import identical_rows, symmetric_info_nce
from genlab.training.loop import build_step

DATA = {"name": "captioned", "base": {"name": "sprites", "color": True, "n_train": 512, "n_test": 8}}
QUIET = {"progress_bar": False, "tensorboard": False, "snapshot_every_kimg": 0}
TEXT_DIM = 16
GAN = {"name": "text_gan", "noise_dim": 8, "c_dim": 4, "text_dim": TEXT_DIM, "g_channels": 4, "d_channels": 4}


def gan_config(out_dir, text_encoder: str, **model) -> dict:
    return {"name": "t2i", "data": DATA, "model": {**GAN, "text_encoder": text_encoder, **model},
            "objective": {"name": "gan", "matching_aware": True},
            "train": {"kimg": 0.064, "batch_size": 16, "out_dir": str(out_dir), **QUIET}}


@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory):
    torch.set_num_threads(1)  # a module fixture is set up before the per-test autouse one that does this
    return genlab.train(config_from_dict({
        "name": "embedding", "data": DATA,
        "model": {"name": "text_embedding", "text_dim": TEXT_DIM, "image_channels": 8, "embed_dim": 16},
        "objective": {"name": "contrastive", "lr": 3e-3},
        "train": {"kimg": 3.2, "batch_size": 32, "out_dir": str(tmp_path_factory.mktemp("runs")),
                  "log_every_kimg": 0.8, **QUIET}}))


def test_info_nce_is_zero_for_aligned_distinct_captions_and_grows_when_they_mismatch():
    aligned = torch.eye(4)
    positives = torch.eye(4, dtype=torch.bool)
    assert symmetric_info_nce(aligned, aligned, torch.tensor(50.0), positives).item() == pytest.approx(0.0, abs=1e-6)
    assert symmetric_info_nce(aligned, aligned[[1, 0, 2, 3]], torch.tensor(50.0), positives) > 10
    scale = torch.tensor(5.0)
    noisy = F.normalize(aligned + 0.3 * torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    assert symmetric_info_nce(aligned, noisy, scale, positives) > symmetric_info_nce(aligned, aligned, scale, positives)


def test_identical_captions_are_each_others_positives_not_negatives():
    tokens = torch.tensor([[5, 6, 0], [5, 6, 0], [5, 7, 0], [8, 6, 0]])
    positives = identical_rows(tokens)
    assert positives.tolist() == [[True, True, False, False], [True, True, False, False],
                                  [False, False, True, False], [False, False, False, True]]
    # Either image of the shared caption is a right answer: which example holds which does not matter.
    generator = torch.Generator().manual_seed(0)
    text, images = (F.normalize(torch.randn(4, 8, generator=generator), dim=1) for _ in range(2))
    swapped, scale = images[[1, 0, 2, 3]], torch.tensor(10.0)
    assert torch.allclose(symmetric_info_nce(text, images, scale, positives),
                          symmetric_info_nce(text, swapped, scale, positives))
    diagonal = torch.eye(4, dtype=torch.bool)
    assert not torch.allclose(symmetric_info_nce(text, images, scale, diagonal),
                              symmetric_info_nce(text, swapped, scale, diagonal))
    # Aligned embeddings reach the minimum, the targets' entropy: log 2 for the two rows of the shared caption.
    aligned = torch.eye(4)[[0, 0, 2, 3]]
    assert symmetric_info_nce(aligned, aligned, torch.tensor(50.0), positives).item() == pytest.approx(math.log(2) / 2,
                                                                                                       abs=1e-5)


def test_an_embedding_trains_and_retrieves_images_from_captions_above_chance(embedding_run):
    logged = [json.loads(line) for line in (embedding_run / "stats.jsonl").read_text().splitlines()]
    accuracy = [row["embedding/text->image top-1"] for row in logged if "embedding/text->image top-1" in row]
    assert accuracy[-1] > 10 / 32 > accuracy[0]  # chance: about 1 in a batch of 32
    model = genlab.load(embedding_run)
    text = model.embed_text(torch.tensor([[1, 2, 0]]))
    assert text.norm(dim=1).item() == pytest.approx(1.0, abs=1e-5)


def test_text_gan_reads_the_pretrained_text_encoder_frozen_and_exports_it(embedding_run, tmp_path, run_phase):
    expected = genlab.load(embedding_run).text.state_dict()

    def unchanged(encoder: torch.nn.Module) -> bool:
        return all(torch.equal(w, expected[k]) for k, w in encoder.state_dict().items())

    copy = shutil.copytree(embedding_run, tmp_path / "embedding")  # deleted below
    config = config_from_dict(gan_config(tmp_path, str(copy)))
    data = load_dataset(config.data, "train")
    step = build_step(config, data.spec, torch.device("cpu"), data)
    for role in ("G", "D", "G_ema"):
        encoder = step.modules[role].text
        assert unchanged(encoder) and not any(p.requires_grad for p in encoder.parameters()), role
    projection = step.modules["D"].project[0].weight.clone()
    for i in range(3):  # GAN steps as the loop runs them, with its requires_grad toggling
        for phase in step.phases():
            run_phase(step, phase, data.batch(slice(16 * i, 16 * i + 16)))
            step.optimizers[phase.optimizer].step()
            if phase.after_step is not None:
                phase.after_step()
    assert not torch.equal(step.modules["D"].project[0].weight, projection)  # the rest of D trained
    assert all(unchanged(step.modules[role].text) for role in ("G", "D", "G_ema"))

    run = genlab.train(config)
    shutil.rmtree(copy)  # the GAN's export holds the frozen weights: it loads without the embedding run
    G = genlab.load(run)
    assert unchanged(G.text)
    assert G.sample(2, labels=G.tokens(["a big red square", "a small blue heart"])).shape == (2, 3, 32, 32)


def test_text_encoder_must_be_a_text_embedding_run_of_the_same_width(embedding_run, tmp_path):
    def build(text_encoder: str, **model):
        config = config_from_dict(gan_config(tmp_path, text_encoder, **model))
        data = load_dataset(config.data, "train")
        build_step(config, data.spec, torch.device("cpu"), data)

    with pytest.raises(ConfigError, match="not a usable run"):
        build(str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"set model.text_dim=16"):
        build(str(embedding_run), text_dim=8)
    gan_run = genlab.train(config_from_dict(gan_config(tmp_path, "")))
    with pytest.raises(ConfigError, match="is a 'text_gan' run, not a text_embedding one"):
        build(str(gan_run))
