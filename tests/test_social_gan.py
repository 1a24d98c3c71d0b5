"""Trajectory prediction: the social-force crowds (three exits, people keeping apart), the ETH/UCY reader,
Social GAN's networks (translation invariance, the pooling over the others), the variety loss, the
displacement errors and the constant-velocity baseline, and a trained run scored by `genlab eval`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genlab.config import config_from_dict
from genlab.data import load_dataset
from genlab.data.crowds import CrowdsConfig, simulate
from genlab.data.trajectory_folder import TrajectoryFolderConfig, write_tracks
from genlab.errors import ConfigError, DataError
from genlab.losses.trajectory import variety_loss
from genlab.metrics.trajectories import constant_velocity, displacement_errors
from genlab.models.protocols import TrajectoryPredictor
from genlab.models.social_gan import TrajectoryGenerator


def crowds(**keys) -> CrowdsConfig:
    return CrowdsConfig(name="crowds", **keys)


def turning_angles(paths: np.ndarray, observed: int) -> np.ndarray:
    """Degrees between each person's last observed step and their last step (anticlockwise positive)."""
    a, b = paths[:, :, observed - 1] - paths[:, :, observed - 2], paths[:, :, -1] - paths[:, :, -2]
    cross, dot = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0], (a * b).sum(-1)
    return np.degrees(np.arctan2(cross, dot))


def test_each_person_leaves_by_the_exit_drawn_for_them():
    """Left turns about +90 degrees, straight on about 0, right turns about -90: three futures per path."""
    paths, turn = simulate(crowds(), np.random.default_rng(0), 500)
    angles = turning_angles(paths, 8)
    for exit_, expected in [(0, 90), (1, 0), (2, -90)]:
        assert abs(np.median(angles[turn == exit_]) - expected) < 15, exit_
    assert np.bincount(turn.ravel(), minlength=3).min() > 500  # about a third each of 2,000 people


def test_the_social_force_keeps_people_apart():
    """The control: without repulsion people walk through each other; with the paper's potential, two people
    come within 0.2 m (centre to centre) in less than half as many scenes (measured: 11 % against 32 %)."""
    def touching(cfg: CrowdsConfig) -> float:
        paths, _ = simulate(cfg, np.random.default_rng(1), 600)
        d = np.linalg.norm(paths[:, :, None] - paths[:, None], axis=-1)
        d[:, np.arange(cfg.agents), np.arange(cfg.agents)] = np.inf
        return float((d.min(axis=(1, 2, 3)) < 0.2).mean())

    assert touching(crowds()) < 0.5 * touching(crowds(repulsion=0.0))


def test_crowds_refuse_exit_probabilities_that_do_not_sum_to_one():
    with pytest.raises(ConfigError, match="sum to 1"):
        crowds(exit_probs=(0.5, 0.5, 0.5))


def test_the_eth_ucy_reader_keeps_people_present_in_the_whole_window(tmp_path):
    (tmp_path / "train").mkdir()
    t = np.arange(6)[:, None]
    walkers = np.stack([np.hstack([t * 0.5, t * 0 + k]) for k in range(3)])  # three people along x, 6 frames
    write_tracks(tmp_path / "train" / "a.txt", walkers)
    with (tmp_path / "train" / "a.txt").open("a") as f:
        f.write("50\t9\t1.0\t1.0\n")  # a fourth person in the last frame only
    data = load_dataset(TrajectoryFolderConfig(name="trajectory_folder", path=str(tmp_path), agents=3, observed=2,
                                               predicted=2), "train")
    paths = data["paths"]
    assert paths.shape == (3, 3, 4, 2)  # windows starting at frames 0, 10, 20; the fourth person in none
    torch.testing.assert_close(paths[1, 2], torch.tensor([[0.5, 2.0], [1.0, 2.0], [1.5, 2.0], [2.0, 2.0]]))
    with pytest.raises(DataError, match="no .txt files"):
        load_dataset(TrajectoryFolderConfig(name="trajectory_folder", path=str(tmp_path)), "test")


def generator(social: bool = True, noise_dim: int = 4) -> TrajectoryGenerator:
    torch.manual_seed(0)
    return TrajectoryGenerator(5, 4, embed=8, hidden=16, pool=8, noise_dim=noise_dim, scale=0.5, social=social).eval()


def test_predictions_move_with_the_scene_and_depend_on_the_others_only_with_pooling():
    G, lonely = generator(), generator(social=False)
    assert isinstance(G, TrajectoryPredictor)
    observed = torch.randn(2, 3, 5, 2).cumsum(dim=2)
    z = G.noise(2, 3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        shifted = G(observed + torch.tensor([3.0, -2.0]), z) - torch.tensor([3.0, -2.0])
        torch.testing.assert_close(shifted, G(observed, z), atol=1e-4, rtol=0)  # translation invariant
        moved = observed.clone()
        moved[:, 2] += torch.tensor([1.0, 1.0])  # the third person elsewhere
        assert not torch.allclose(G(moved, z)[:, 0], G(observed, z)[:, 0])  # the first sees it
        torch.testing.assert_close(lonely(moved, z)[:, 0], lonely(observed, z)[:, 0])  # unless alone


def test_noise_gives_different_futures_and_none_gives_one():
    observed = torch.randn(2, 3, 5, 2).cumsum(dim=2)
    many = generator().predict(observed, 5, torch.Generator().manual_seed(0))
    assert many.shape == (5, 2, 3, 4, 2) and (many[0] - many[1]).abs().max() > 1e-3
    one = generator(noise_dim=0).predict(observed, 3)
    assert torch.equal(one[0], one[2])


def test_the_variety_loss_and_the_errors_keep_the_best_sample_per_scene():
    truth = torch.zeros(2, 1, 3, 2)
    predictions = torch.zeros(2, 2, 1, 3, 2)
    predictions[0, 0] += 1.0  # scene 0: sample 1 is exact; scene 1: sample 0 is
    predictions[1, 1] += torch.tensor([3.0, 4.0])
    torch.testing.assert_close(variety_loss(predictions, truth), torch.zeros(2))
    errors = displacement_errors(predictions, truth)
    assert errors["ade_best"] == 0 and errors["fde_best"] == 0
    assert errors["ade_one"] == pytest.approx((math.sqrt(2) + 0) / 2)  # the first sample: sqrt 2 off, then exact
    assert errors["spread"] == pytest.approx((math.sqrt(2) / 2 + 2.5) / 2)


def test_best_of_k_picks_one_sample_for_the_whole_scene_not_per_person():
    """Social GAN's evaluation: per scene, the sample whose errors summed over its people are least. Two people
    whose best samples differ: per-person best would be 0; per scene, the best sample leaves one person off."""
    truth = torch.zeros(1, 2, 1, 2)
    predictions = torch.zeros(2, 1, 2, 1, 2)
    predictions[0, 0, 1] += torch.tensor([3.0, 4.0])  # sample 0: person 0 exact, person 1 five metres off
    predictions[1, 0, 0] += torch.tensor([0.0, 2.0])  # sample 1: person 0 two metres off, person 1 exact
    errors = displacement_errors(predictions, truth)
    assert errors["ade_best"] == pytest.approx(1.0) and errors["fde_best"] == pytest.approx(1.0)  # sample 1: (2 + 0) / 2
    loss = variety_loss(predictions, truth)
    assert loss.item() == pytest.approx(4.0 / 4)  # sample 1's squared error 4, averaged over 2 people x 2 coordinates


def test_constant_velocity_continues_the_last_step():
    observed = torch.tensor([[[[0.0, 0.0], [1.0, 0.5]]]])
    torch.testing.assert_close(constant_velocity(observed, 3), torch.tensor([[[[2.0, 1.0], [3.0, 1.5], [4.0, 2.0]]]]))


@pytest.mark.slow  # a training run of ~25 s
def test_social_gan_beats_constant_velocity_and_draws_several_futures(tmp_path, capsys):
    import genlab
    from genlab.cli.main import main

    run = genlab.train(config_from_dict({
        "name": "tiny-sgan",
        "data": {"name": "crowds", "n_train": 2000, "n_test": 200},
        "model": {"name": "social_gan", "embed": 16, "hidden": 32, "pool": 16, "noise_dim": 8, "d_hidden": 32},
        "objective": {"name": "social_gan", "variety_k": 10},
        "train": {"kimg": 16, "batch_size": 64, "out_dir": str(tmp_path), "log_every_kimg": 4,
                  "snapshot_every_kimg": 16, "tensorboard": False, "progress_bar": False},
    }))
    assert main(["eval", str(run), "--n", "200"]) == 0  # a trajectory model's default metric: ADE / FDE
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["ade_best"] < record["ade_constant_velocity"]
    assert record["spread"] > 0.2  # metres between the 20 futures' ends: not one future drawn 20 times
    assert (run / "samples" / "predictions-latest.png").exists()
    capsys.readouterr()
