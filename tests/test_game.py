"""The step-by-step toy game (genlab.experiments.game) behind the studio's game view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.errors import ConfigError
from genlab.experiments.game import GameConfig, ToyGame
from genlab.metrics.theory import LOG4


def test_game_is_deterministic_for_its_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    views = []
    for _ in range(2):
        game = ToyGame(GameConfig(data="ring", seed=5))
        game.play(20)
        views.append(game.view())
    assert views[0] == views[1]
    assert torch.equal(torch.rand(1), expected)
    other = ToyGame(GameConfig(data="ring", seed=6))
    other.play(20)
    assert other.view()["d"] != views[0]["d"]


@pytest.mark.slow
def test_1d_game_approaches_the_theorem():
    """Along training, V(D, G) tracks C(G) = -log 4 + 2 JSD and both fall towards -log 4."""
    game = ToyGame(GameConfig(data="gaussian"))
    start = game.view()
    for _ in range(5):
        game.play(200)
    end = game.view()
    assert start["jsd"] > 0.5 and end["jsd"] < 0.02
    assert abs(end["value"] - end["theorem_value"]) < 0.02
    assert end["theorem_value"] == pytest.approx(-LOG4 + 2 * end["jsd"])
    d, d_star, x = (np.asarray(end[k]) for k in ("d", "d_star", "x"))
    bulk = np.asarray(end["p_data"]) > 0.05 * max(end["p_data"])
    assert np.abs(d - d_star)[bulk].max() < 0.1  # D near D* where the data is
    assert [h["step"] for h in end["history"]] == [0, 1000]


def test_2d_view_has_square_maps_and_points():
    view = ToyGame(GameConfig(data="grid")).view()
    n = view["grid"]
    assert np.asarray(view["d"]).shape == np.asarray(view["d_star"]).shape == (n, n)
    assert np.asarray(view["real"]).shape[1] == 2 and 0 <= view["jsd"] <= np.log(2) + 1e-6


@pytest.mark.parametrize("settings, words", [
    ({"data": "spiral"}, "data='spiral'"), ({"k": 0}, "k=0"), ({"lr_d": 0.0}, "lr_d=0.0"),
    ({"batch_size": 2}, "batch_size=2"), ({"g_loss": "wasserstein"}, "g_loss='wasserstein'"),
])
def test_bad_settings_are_refused_by_name(settings, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        GameConfig(**settings)


def test_play_is_bounded_per_call():
    game = ToyGame()
    with pytest.raises(ConfigError, match="1..200 steps"):
        game.play(0)
    with pytest.raises(ConfigError, match="1..200 steps"):
        game.play(201)
