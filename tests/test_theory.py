"""The 2014 GAN theory (metrics/theory.py, the 1-D experiment in experiments/theory.py,
`genlab theory`) and the PacGAN mode-coverage protocol (metrics/modes.py), against closed
forms and hand-made cases."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from genlab.cli import theory as cli_theory
from genlab.cli.main import main
from genlab.data.base import Image, Points
from genlab.data.toy import mixture_modes
from genlab.errors import ConfigError
from genlab.losses.gan import minimax_value
from genlab.metrics import theory as th
from genlab.metrics.modes import mean_and_stderr, mixture_mode_coverage, nearest_modes
from genlab.experiments.theory import TheoryConfig, run_theory
from genlab.models import build_modules
from genlab.models.toy import ToyMLPConfig

X = np.linspace(-30.0, 30.0, 60_001)  # fine enough that the trapezoid rule is exact to ~1e-9 here
# A budget that runs in a few seconds on one thread; the full one is `genlab theory`'s default.
SMALL = dict(gan_steps=600, panels=(0, 600), track_every=200, d_steps=600, mc_samples=50_000,
             kde_samples=5_000, grid_points=501, approach=(0.0, 1.0))
TINY = {**SMALL, "gan_steps": 20, "panels": (0, 20), "track_every": 10, "d_steps": 20, "mc_samples": 2_000,
        "kde_samples": 500}  # for checks of plumbing, not of numbers


def normal(mean: float, std: float) -> np.ndarray:
    return stats.norm.pdf(X, mean, std)


# ----------------------------------------------------------------------------- densities and divergences


def test_jsd_of_identical_densities_is_zero_and_of_disjoint_ones_log_2():
    p = normal(1.0, 2.0)
    assert th.jsd_integral(X, p, p) == pytest.approx(0.0, abs=1e-12)
    assert th.jsd_integral(X, normal(-10.0, 1.0), normal(10.0, 1.0)) == pytest.approx(math.log(2), abs=1e-9)
    # Exactly disjoint supports, with zeros on each side: 0 log 0 must count as 0.
    uniform_left = np.where((X >= -2) & (X < -1), 1.0, 0.0)
    uniform_right = np.where((X > 1) & (X <= 2), 1.0, 0.0)
    assert th.jsd_integral(X, uniform_left, uniform_right) == pytest.approx(math.log(2), rel=1e-3)


def test_jsd_matches_adaptive_quadrature():
    p, q = stats.norm(0.0, 1.0), stats.norm(1.5, 0.7)

    def integrand(x: float) -> float:
        a, b = p.pdf(x), q.pdf(x)
        m = 0.5 * (a + b)
        return 0.5 * (a * math.log(a / m) + b * math.log(b / m))

    reference, _ = integrate.quad(integrand, -12, 12, limit=200)
    assert th.jsd_integral(X, p.pdf(X), q.pdf(X)) == pytest.approx(reference, abs=1e-8)


def test_value_at_optimal_discriminator_is_minus_log_4_plus_2_jsd():
    p_data, p_g = normal(0.0, 1.0), normal(1.0, 1.5)
    jsd = th.jsd_integral(X, p_data, p_g)
    assert 0.05 < jsd < math.log(2)
    v_star = th.value_integral(X, p_data, p_g, th.optimal_logit(p_data, p_g))
    assert v_star == pytest.approx(th.theorem_value(jsd), abs=1e-9)
    # Monte Carlo with the exact D* on samples agrees within its sampling error (~1e-3 here).
    rng = np.random.default_rng(0)
    real, fake = rng.normal(0.0, 1.0, 400_000), rng.normal(1.0, 1.5, 400_000)

    def logit(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(th.optimal_logit(stats.norm.pdf(x, 0, 1), stats.norm.pdf(x, 1, 1.5)))

    assert minimax_value(logit(real), logit(fake)).item() == pytest.approx(th.theorem_value(jsd), abs=0.01)
    # Any other discriminator does worse (Proposition 1), e.g. D = 1/2 everywhere gives -log 4.
    assert th.value_integral(X, p_data, p_g, np.zeros_like(X)) == pytest.approx(-th.LOG4, abs=1e-9)
    assert v_star > -th.LOG4
    # Identical densities reach the minimum -log 4 of the theorem.
    assert th.value_integral(X, p_data, p_data, th.optimal_logit(p_data, p_data)) == pytest.approx(-th.LOG4, abs=1e-9)


def test_value_integral_is_finite_where_d_star_rounds_to_one():
    # Far right, p_g / p_data ~ 1e-20: D* is 1.0 in floating point but log(1 - D*) must stay finite.
    p_data, p_g = normal(0.0, 3.0), normal(0.0, 1.0)
    assert math.isfinite(th.value_integral(X, p_data, p_g, th.optimal_logit(p_data, p_g)))


def test_pushforward_density_of_an_affine_map_is_the_shifted_gaussian():
    z = np.linspace(-8, 8, 8001)
    p_g = th.pushforward_density(X, 2.0 * z + 1.0, np.full_like(z, 2.0), stats.norm.pdf(z))
    assert np.abs(p_g - normal(1.0, 2.0)).max() < 1e-5


def test_kde_recovers_a_gaussian():
    x = np.linspace(-2.0, 6.0, 801)
    samples = np.random.default_rng(0).normal(2.0, 0.5, 20_000)
    estimate = th.kde_density(samples, x)
    assert integrate.trapezoid(estimate, x) == pytest.approx(1.0, abs=1e-4)
    # Peak 0.8; Scott's bandwidth (0.069 here) lowers it by ~1%, sampling noise adds ~0.01.
    assert np.abs(estimate - stats.norm.pdf(x, 2.0, 0.5)).max() < 0.04


def test_bulk_mask_holds_the_mass_and_skips_the_gap_between_modes():
    mixture = 0.5 * normal(-5.0, 0.5) + 0.5 * normal(5.0, 0.5)
    mask = th.bulk_mask(X, mixture, 0.98)
    assert integrate.trapezoid(np.where(mask, mixture, 0.0), X) >= 0.98 - 1e-3
    assert not mask[np.searchsorted(X, 0.0)]
    assert mask[np.searchsorted(X, -5.0)] and mask[np.searchsorted(X, 5.0)]


# ----------------------------------------------------------------------------- the experiment


@pytest.mark.slow
@pytest.mark.parametrize("data", ["gaussian", "mixture"])
def test_learned_discriminator_approaches_d_star_on_a_small_budget(data):
    result = run_theory(TheoryConfig(data=data, seed=0, **SMALL))
    n = result.numbers
    # The full budget (`genlab theory`) reaches < 0.05 and < 0.02; this one is ~3x smaller.
    assert n["max_abs_d_error"] < 0.1
    assert abs(n["value_gap"]) < 0.02
    assert n["value_integral"] == pytest.approx(n["value_monte_carlo"], abs=0.02)
    assert n["jsd_kde"] == pytest.approx(n["jsd"], abs=0.02)
    assert result.trajectory[-1]["jsd"] < result.trajectory[0]["jsd"]  # the game moves p_g towards p_data
    assert result.approach[-1]["value_monte_carlo"] == pytest.approx(-th.LOG4, abs=1e-12)


def test_experiment_is_deterministic_and_leaves_the_global_rng_alone():
    tiny = TheoryConfig(**TINY)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = run_theory(tiny).numbers
    assert torch.equal(torch.get_rng_state(), state)
    assert run_theory(tiny).numbers == first


def test_cli_writes_figure_and_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_theory, "TheoryConfig", functools.partial(TheoryConfig, **TINY))
    code = main(["theory", "--data", "mixture", "--seed", "1", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "theory-mixture-seed1.json").read_text())
    assert code == (0 if all(c["passed"] for c in report["checks"].values()) else 1)
    assert set(report["checks"]) == {"max_abs_d_error", "value_gap"}
    assert (tmp_path / "theory-mixture-seed1.png").stat().st_size > 10_000  # six panels, not a blank page
    assert "max |D(x) - D*(x)|" in capsys.readouterr().out


# ----------------------------------------------------------------------------- mode coverage (PacGAN)


def test_mode_coverage_on_hand_made_samples():
    centers, sigma = mixture_modes("toy_ring")
    # 2,500 samples spread evenly over the 8 centres, jittered well within 3 sigma.
    jitter = np.random.default_rng(0).normal(0.0, 0.5 * sigma, (2500, 2))
    all_modes = mixture_mode_coverage(centers[np.arange(2500) % 8] + jitter, centers, sigma)
    assert all_modes["modes_covered"] == 8 and all_modes["num_modes"] == 8
    assert all_modes["high_quality"] == 1.0
    assert all_modes["kl_to_uniform"] == pytest.approx(0.0, abs=1e-4)

    one_mode = mixture_mode_coverage(np.repeat(centers[3:4], 2500, axis=0), centers, sigma)
    assert one_mode["modes_covered"] == 1 and one_mode["high_quality"] == 1.0
    assert one_mode["kl_to_uniform"] == pytest.approx(math.log(8))

    far = mixture_mode_coverage(np.full((2500, 2), 10.0), centers, sigma)
    assert far["modes_covered"] == 0 and far["high_quality"] == 0.0 and math.isnan(far["kl_to_uniform"])


def test_high_quality_threshold_is_three_sigma_from_the_nearest_mode():
    centers, sigma = np.array([[0.0, 0.0], [10.0, 0.0]]), 0.1
    samples = np.array([[0.29, 0.0], [0.31, 0.0], [10.0, -0.2], [5.0, 0.0]])
    index, distance = nearest_modes(samples, centers)
    assert index.tolist() == [0, 0, 1, 0] and distance[2] == pytest.approx(0.2)
    result = mixture_mode_coverage(samples, centers, sigma)
    assert result["high_quality"] == 0.5 and result["modes_covered"] == 2


def test_mean_and_standard_error():
    mean, se = mean_and_stderr([6, 7, 8, 5])
    assert mean == 6.5 and se == pytest.approx(np.std([6, 7, 8, 5], ddof=1) / 2)
    assert math.isnan(mean_and_stderr([3.0])[1])


def test_toy_gan_model_builds_for_points_and_refuses_images():
    nets = build_modules(ToyMLPConfig(), {"points": Points(2)})
    points = nets["G"].sample(5, generator=torch.Generator().manual_seed(0))
    assert points.shape == (5, 2) and points.dtype == torch.float32
    assert nets["D"](points).shape == (5,)
    with pytest.raises(ConfigError, match="toy points"):
        build_modules(ToyMLPConfig(), {"image": Image(1, 28, 28)})
