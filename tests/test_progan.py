"""Progressive growing (models/progan.py): the schedule, smooth fade-ins, and a stage that survives a checkpoint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab.config import config_from_dict, model_config_from_dict
from genlab.data.base import Image
from genlab.models import build_modules
from genlab.models.progan import growth
from genlab.models.protocols import Staged

TINY = {"name": "progan", "latent_dim": 8, "g_channels": 4, "d_channels": 4, "max_channels": 16, "stage_kimg": 1.0}


def tiny():
    torch.manual_seed(0)
    modules = build_modules(model_config_from_dict(TINY, "test"), {"image": Image(3, 32, 32)})
    return modules["G"].eval(), modules["D"].eval()


@pytest.mark.parametrize("images, expected", [
    (0, (0, 1.0)), (999, (0, 1.0)),  # 4x4 alone
    (1000, (1, 0.0)), (1500, (1, 0.5)), (2000, (1, 1.0)), (2999, (1, 1.0)),  # 8x8 fades in, then alone
    (3250, (2, 0.25)), (5000, (3, 0.0)), (7000, (3, 1.0)), (10**9, (3, 1.0)),  # 32x32 is the last
])
def test_growth_schedule(images, expected):
    stage, alpha = growth(images, 1000, stages=4)
    assert stage == expected[0] and alpha == pytest.approx(expected[1])


def test_without_growing_the_nets_work_at_full_size_from_the_first_image():
    torch.manual_seed(0)
    modules = build_modules(model_config_from_dict({**TINY, "grow": False}, "test"), {"image": Image(3, 32, 32)})
    G = modules["G"].eval()
    for net in (G, modules["D"]):
        net.set_progress(0)
        assert net.stage == (3, 1.0)
    with torch.no_grad():
        image = G(torch.randn(2, 8))
    assert not torch.equal(image, F.interpolate(image[:, :, ::2, ::2], scale_factor=2, mode="nearest"))


def test_a_new_block_fades_in_from_exactly_what_the_previous_stage_gave():
    G, D = tiny()
    assert isinstance(G, Staged) and isinstance(D, Staged)
    z, x = torch.randn(4, 8), torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for start in (1000, 3000, 5000):  # the first image of each fade-in
            for net in (G, D):
                net.set_progress(start - 1)
            before = G(z), D(x)
            for net in (G, D):
                net.set_progress(start)
            after = G(z), D(x)
            assert torch.allclose(before[0], after[0], atol=1e-6) and torch.allclose(before[1], after[1], atol=1e-5)
            for net in (G, D):
                net.set_progress(start + 999)  # the fade's end: the new block's own output
            assert (G(z) - after[0]).abs().mean() > 1e-4


def test_samples_are_at_the_data_size_and_blocky_at_low_stages():
    G, _ = tiny()
    with torch.no_grad():
        image = G(torch.randn(2, 8))  # stage 0: a 4x4 image shown at 32x32
    assert image.shape == (2, 3, 32, 32)
    assert torch.equal(image, F.interpolate(image[:, :, ::8, ::8], scale_factor=8, mode="nearest"))


def test_export_keeps_the_stage_it_was_trained_to(tmp_path):
    run = genlab.train(config_from_dict({
        "name": "grow", "data": {"name": "color_sprites", "image_size": 32, "n_train": 64, "n_test": 8},
        "model": {**TINY, "stage_kimg": 0.1}, "objective": {"name": "gan"},
        "train": {"kimg": 0.256, "batch_size": 16, "out_dir": str(tmp_path), "progress_bar": False, "tensorboard": False,
                  "snapshot_every_kimg": 0}}))
    G = genlab.load(run)
    assert int(G.images_seen) == 256 - 16  # set at the start of the last iteration
    assert G.stage == growth(240, 100, 4) == (1, 1.0)
