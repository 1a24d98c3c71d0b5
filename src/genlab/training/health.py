"""GAN health checks: pure rules over the loop's averaged stats, each returning plain warnings.

The stats are the loop's per-window averages keyed ``<phase>/<stat>``: ``D/loss``,
``D/D(x)``, ``D/D(G(z))``, ``G/loss``, ``G/grad_norm``, ``G/diversity`` (see
``genlab.training.objectives.gan``). A warning gives the values it saw and what to try,
because its reader is watching a run, not reading this file. The loop prefixes each
warning with the iteration and kimg at which it was raised.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

# A probability-type D "wins outright" beyond these mean outputs (the PyTorch DCGAN
# example's failure shows D(x) = 1.00 and G loss ~ 40, i.e. D(G(z)) ~ e^-40).
WIN_REAL, WIN_FAKE = 0.99, 0.01
# Non-saturating G loss -E[log D(G(z))] in nats: above 10, the geometric mean of D(G(z)) is
# below e^-10 ~ 5e-5. Healthy 28-pixel DCGAN and 2014 MLP runs stay below 4; the PyTorch
# example's failure climbs to ~40.
G_LOSS_REJECT = 10.0
# Hinge margins are +-1: past both, D's loss is exactly zero and it ignores G's samples.
HINGE_MARGIN = 1.0
# LSGAN's D loss near its floor of zero: D(x) ~ 1 and D(G(z)) ~ 0 on every example.
LSGAN_WIN = 0.01
VANISH_RATIO = 1e-3  # G's gradient norm this far below its first logged value
DIVERGE_RATIO = 100.0  # a loss this many times its first logged magnitude (at least 1)
COLLAPSE_DIVERSITY = 0.1  # fakes' mean pairwise distance relative to the real batch's
NEVER_SPREAD_WINDOWS = 5  # a G this many windows old that never reached diverse samples

ADVICE = (
    "Try a lower objective.lr_d or a higher lr_g, fewer n_critic, model.spectral_norm=true, or "
    "objective.loss=hinge (or nonsaturating instead of minimax)"
)  # for stats without a run's settings; a run's monitor says only what fits it (run_advice)


@dataclass(frozen=True)
class RunSettings:
    """What the advice of a run's monitor may suggest changing: its objective's settings and its D."""

    loss: str
    lr_d: float
    lr_g: float
    n_critic: int
    r1: bool  # an R1 term
    spectral_norm: bool  # D's weights are spectrally normalised already
    batch_norm_in_d: bool  # R1 and gradient penalties are refused under it
    spectral_norm_setting: str | None = None  # the override that normalises D, where its model has one


def run_advice(run: RunSettings) -> str:
    """What to try against a D that wins, vanishing G gradients or collapse: only changes the run does not
    already have, in the order the literature found them to help (non-saturating G loss, Goodfellow et al.
    2014; spectral norm, Miyato et al. 2018; R1, Mescheder et al. 2018; hinge; then the balance of the two
    players: learning rates (Heusel et al. 2017) and D steps per G step)."""
    tries = []
    if run.loss == "minimax":
        tries.append("objective.loss=nonsaturating (the saturating G loss vanishes when D wins)")
    if not run.spectral_norm and run.spectral_norm_setting:
        tries.append(f"spectral normalisation in D ({run.spectral_norm_setting})")
    if not run.r1 and not run.batch_norm_in_d and run.loss not in ("wgan", "wgan_gp"):
        tries.append("an R1 penalty on real data (objective.regularisers: [{name: r1, weight: 1}])")
    if run.loss in ("minimax", "nonsaturating", "lsgan"):
        tries.append("objective.loss=hinge")
    tries.append(f"a lower objective.lr_d (now {run.lr_d:g}) or a higher objective.lr_g (now {run.lr_g:g})")
    if run.n_critic > 1:
        tries.append(f"fewer D steps per G step (objective.n_critic, now {run.n_critic})")
    return "Try " + "; or ".join(tries)


@dataclass
class HealthHistory:
    """What the relative rules compare against: the first window and the best diversity so far."""

    baseline: dict[str, float] = field(default_factory=dict)
    peak_diversity: float = 0.0
    windows: int = 0


def d_wins(loss: str, stats: dict[str, float]) -> str | None:
    """The evidence that D separates real from fake completely, by the measures its loss allows, or None."""
    dx, dgz = stats.get("D/D(x)", math.nan), stats.get("D/D(G(z))", math.nan)
    if loss in ("minimax", "nonsaturating") and dx > WIN_REAL and dgz < WIN_FAKE:
        return f"D(x) = {dx:.3f}, D(G(z)) = {dgz:.3g}"
    g_loss = stats.get("G/loss", 0.0)
    if loss == "nonsaturating" and g_loss > G_LOSS_REJECT:
        # G's loss -E[log D(G(z))] is minus the log of the geometric mean of D(G(z)): it shows a D
        # that is certain about most fakes where the arithmetic mean is lifted by a few.
        return f"D(x) = {dx:.3f} and the geometric mean of D(G(z)) is e^-{g_loss:.3g} (arithmetic mean {dgz:.3g})"
    if loss == "hinge" and dx > HINGE_MARGIN and dgz < -HINGE_MARGIN:
        return f"mean scores D(x) = {dx:.3g} and D(G(z)) = {dgz:.3g} beyond both hinge margins"
    if loss == "lsgan" and stats.get("D/loss", math.inf) < LSGAN_WIN:
        return f"D loss = {stats['D/loss']:.3g} (D(x) = {dx:.3g}, D(G(z)) = {dgz:.3g})"
    return None  # a Wasserstein critic has no winning point: its scores are unbounded


def gan_warnings(loss: str, stats: dict[str, float], history: HealthHistory, advice: str = ADVICE) -> list[str]:
    """Warnings for one window of stats, given the history before it; ``advice`` ends those it can help."""
    warnings = []
    g_loss, g_norm = stats.get("G/loss", math.nan), stats.get("G/grad_norm", math.nan)
    evidence = d_wins(loss, stats)
    if evidence:
        warnings.append(
            f"D wins outright: {evidence}; G loss = {g_loss:.3g}, G grad norm = {g_norm:.3g}; "
            f"G learns little from a D this sure. {advice}"
        )
    g_norm0 = history.baseline.get("G/grad_norm", 0.0)
    if g_norm0 > 0 and g_norm < VANISH_RATIO * g_norm0:
        warnings.append(
            f"G's gradients vanish: grad norm {g_norm:.3g}, was {g_norm0:.3g} at the start "
            f"(G loss = {g_loss:.3g}). {advice}"
        )
    for key in ("D/loss", "G/loss"):
        value, start = stats.get(key), history.baseline.get(key)
        if value is not None and start is not None and not abs(value) <= DIVERGE_RATIO * max(abs(start), 1.0):
            warnings.append(
                f"{key} diverges: {value:.3g}, was {start:.3g} at the start; "
                "lower the learning rates or check the loss and its penalty weights"
            )
    warnings += _collapse(stats.get("G/diversity"), history, advice)
    return warnings


def _collapse(diversity: float | None, history: HealthHistory, advice: str) -> list[str]:
    # An untrained G often maps all noise to nearly one image; that is only a problem once G
    # had spread out and fell back, or never spreads out at all.
    if diversity is None or diversity >= COLLAPSE_DIVERSITY:
        return []
    measured = f"the samples' mean pairwise distance is {diversity:.1%} of a real batch's"
    if history.peak_diversity >= 2 * COLLAPSE_DIVERSITY:
        return [
            f"samples collapse to near-duplicates (mode collapse): {measured}, down from "
            f"{history.peak_diversity:.0%}. {advice}"
        ]
    if history.windows >= NEVER_SPREAD_WINDOWS:
        return [
            f"samples are near-duplicates after {history.windows} logging windows: {measured}; "
            "check G's learning rate and initialisation"
        ]
    return []


class GANHealth:
    """The monitor a GANStep calls at each log: remembers the history the rules compare with.

    The history is part of the step's state, so a resumed run compares with the same start.
    """

    def __init__(self, loss: str, advice: str = ADVICE) -> None:
        self.loss, self.advice = loss, advice
        self.history = HealthHistory()

    def __call__(self, stats: dict[str, float]) -> list[str]:
        if not self.history.baseline:
            # The phases' own stats only: wall-clock speed is no baseline, and would make the state differ
            # across resumes.
            self.history.baseline = {k: v for k, v in stats.items() if k.startswith(("D/", "G/")) and math.isfinite(v)}
        warnings = gan_warnings(self.loss, stats, self.history, self.advice)
        self.history.windows += 1
        self.history.peak_diversity = max(self.history.peak_diversity, stats.get("G/diversity", 0.0))
        return warnings

    def state_dict(self) -> dict:
        return dataclasses.asdict(self.history)

    def load_state_dict(self, state: dict) -> None:
        self.history = HealthHistory(**state)
