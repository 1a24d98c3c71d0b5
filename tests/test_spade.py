"""SPADE: the label map modulates each normalisation per pixel, a style image fixes the output's style code,
feature matching compares D's layers, and data without a label map is refused with what to use."""

from __future__ import annotations

import pytest
import torch

from genlab.data.base import Image, LabelMap
from genlab.errors import ConfigError
from genlab.models.spade import SPADEConfig, SPADEGenerator, SPADENorm, build_spade, one_hot
from genlab.training.objectives.spade import feature_matching


def test_the_label_map_modulates_the_normalisation_where_it_changes():
    """Two label maps that differ in one corner give the same output everywhere that the two 3x3 convolutions
    (of the label map, then to gamma and beta) cannot see the corner from: the layout acts locally."""
    torch.manual_seed(0)
    norm = SPADENorm(channels=4, classes=3, hidden=8).eval()
    x = torch.randn(1, 4, 12, 12)
    a = torch.zeros(1, 12, 12, dtype=torch.long)
    b = a.clone()
    b[0, :3, :3] = 2
    with torch.no_grad():
        ya, yb = norm(x, one_hot(a, 3)), norm(x, one_hot(b, 3))
    changed = (ya - yb).abs().amax(dim=1)[0] > 1e-6
    assert changed[:3, :3].all() and not changed[6:, :].any() and not changed[:, 6:].any()


def generator() -> SPADEGenerator:
    torch.manual_seed(0)
    return SPADEGenerator((3, 16, 16), classes=3, channels=4, z_dim=8, hidden=8)


def test_a_style_image_fixes_the_code_and_none_draws_one():
    G = generator()
    labels = torch.randint(0, 3, (2, 16, 16), generator=torch.Generator().manual_seed(1))
    styles = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    same = G.synthesise(labels, styles)
    assert same.shape == (2, 3, 16, 16) and same.min() >= -1 and same.max() <= 1 and G.training
    assert torch.equal(same, G.synthesise(labels, styles))  # the posterior mean: no noise
    assert not torch.allclose(G.synthesise(labels, styles.flip(0)), same)
    drawn = G.synthesise(labels, None, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, G.synthesise(labels, None, torch.Generator().manual_seed(3)))
    assert not torch.equal(drawn, G.synthesise(labels, None, torch.Generator().manual_seed(4)))


def test_feature_matching_sums_the_layers_averages_the_scales_and_skips_the_logits():
    real = [[torch.ones(1, 2, 4, 4), torch.ones(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)],
            [torch.ones(1, 2, 2, 2), torch.ones(1, 3, 1, 1), torch.zeros(1, 1, 1, 1)]]
    assert feature_matching(real, real).item() == 0
    logits_only = [[*fs[:-1], torch.full_like(fs[-1], 5.0)] for fs in real]
    assert feature_matching(real, logits_only).item() == 0
    shifted = [[f + 1 for f in fs] for fs in real]
    assert feature_matching(real, shifted).item() == pytest.approx(2.0)  # 1 per layer, two layers, per scale
    one_scale_off = [[f + 1 for f in real[0]], real[1]]
    assert feature_matching(real, one_scale_off).item() == pytest.approx(1.0)


def test_data_without_a_label_map_is_refused_with_what_to_use():
    with pytest.raises(ConfigError, match="color_sprites"):
        build_spade(SPADEConfig(), {"image": Image(3, 32, 32)})
    with pytest.raises(ConfigError, match="8, 16, 32"):
        build_spade(SPADEConfig(), {"image": Image(3, 24, 24), "segmentation": LabelMap(("a", "b"), 24, 24)})
