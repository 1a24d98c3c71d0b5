"""The GAN game step by step on toy data, for watching it (the studio's "game" view, after GAN Lab).

Where :mod:`genlab.experiments.theory` runs the whole experiment and checks the paper's
identities, a :class:`ToyGame` holds one game in progress: ``play(n)`` advances it by n
generator updates (each after k discriminator updates, as in Goodfellow et al.'s Algorithm 1),
or moves one player alone (``players="D"`` or ``"G"``); ``retune`` changes k, the learning rates
and G's loss mid-game, as GAN Lab does; and ``view()`` measures where it stands:

- 1-D data ("gaussian", "mixture"): G is the monotone generator of the theory experiment, so
  p_g is exact (change of variables); D, D* = p_data / (p_data + p_g), V(D, G) and
  -log 4 + 2 JSD are integrals on a grid.
- 2-D data ("ring", "grid"): G is an MLP, so p_g is a Gaussian kernel density estimate of
  2,000 of its samples (scipy's, Scott's bandwidth); D and D* are heat maps on a 40 x 40
  grid, V(D, G) is a Monte Carlo mean over fresh samples and the JSD a grid integral of the
  exact p_data against the KDE, so in 2-D the two sides of Theorem 1 carry the KDE's error.
  The shown generated points come from fixed latents (they move only when G does), each with the
  gradient G's loss puts on it (``arrows``: minus d loss / d x, where G's update pushes the point).

Every view's history row also holds G's gradient norm at its last update: under the saturating
loss it collapses while D wins early, which the non-saturating loss avoids (Goodfellow et al. 2014).
After each play the training runs' health monitor reads the game's stats (D(x), D(G(z)), G's
gradient norm, sample diversity), so a D that wins, vanishing gradients and mode collapse on the
ring are flagged by the same rules as in a real run.

The 2-D sets are wider than the training sets ``toy_ring`` / ``toy_grid`` (sigma 0.2 rather
than 0.02 and 0.05) so that a KDE and a 40 x 40 grid can resolve them. A user may also draw the
data (``data="drawn"``): each point they put down becomes a Gaussian of the same width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from scipy import integrate, stats
from scipy.special import expit
from torch import nn

from genlab.data.toy import CONFIGS as TOY_CONFIGS
from genlab.data.toy import GaussianMixture
from genlab.errors import ConfigError
from genlab.experiments.theory import G_LOSSES, MonotoneGenerator, covering_grid, generator_density, logits_on
from genlab.losses.gan import d_minimax, minimax_value
from genlab.metrics import theory as th
from genlab.models.toy import ToyDiscriminator, ToyGenerator
from genlab.training.health import GANHealth
from genlab.training.objectives.gan import batch_diversity

DATA: dict[str, tuple[str, dict[str, Any]]] = {  # game name -> (toy dataset, its settings)
    "gaussian": ("toy_gaussian_1d", {}),
    "mixture": ("toy_mixture_1d", {}),
    "ring": ("toy_ring", {"modes": 8, "radius": 2.0, "sigma": 0.2}),
    "grid": ("toy_grid", {"side": 3, "spacing": 2.0, "sigma": 0.2}),
}
GRID_1D = 201  # points of the 1-D view
GRID_2D = 40  # cells per side of the 2-D heat maps
KDE_SAMPLES = 2000
MC_SAMPLES = 4096  # per distribution, for V(D, G) in 2-D
SHOWN_POINTS = 256  # real and generated points drawn over the 2-D heat map
ARROWS = 64  # of the generated points, those drawn with their gradient
Players = Literal["both", "D", "G"]
MAX_STEPS_PER_PLAY = 200  # bounds one request to about a second on a CPU


DRAWN_STD = 0.2  # each drawn point is a Gaussian of this width, as the ring's and grid's modes
MAX_DRAWN = 200  # points of a drawn distribution
DRAWN_BOX = 4.0  # drawn points lie in [-DRAWN_BOX, DRAWN_BOX]^2


@dataclass(frozen=True)
class GameConfig:
    data: Literal["gaussian", "mixture", "ring", "grid", "drawn"] = "mixture"
    points: tuple[tuple[float, float], ...] = ()  # data="drawn": the user's points, each a Gaussian of DRAWN_STD
    g_loss: Literal["nonsaturating", "minimax"] = "nonsaturating"
    k: int = 1  # D updates per G update
    lr_d: float = 2e-3  # Adam (betas 0.5, 0.999) for each player
    lr_g: float = 2e-3
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.data not in (*DATA, "drawn"):
            problems.append(f"data={self.data!r} is not one of {', '.join(DATA)}, drawn")
        if (self.data == "drawn") != bool(self.points):
            problems.append("points go with data=drawn, and data=drawn needs at least one point")
        if len(self.points) > MAX_DRAWN or not all(
            len(p) == 2 and all(math.isfinite(v) and abs(v) <= DRAWN_BOX for v in p) for p in self.points
        ):
            problems.append(f"points must be at most {MAX_DRAWN} (x, y) pairs in [-{DRAWN_BOX:g}, {DRAWN_BOX:g}]")
        if self.g_loss not in G_LOSSES:
            problems.append(f"g_loss={self.g_loss!r} is not one of {', '.join(G_LOSSES)}")
        if not 1 <= self.k <= 10:
            problems.append(f"k={self.k} must be 1..10 D steps per G step")
        for name in ("lr_d", "lr_g"):
            if not 0 < getattr(self, name) <= 0.1:
                problems.append(f"{name}={getattr(self, name)} must be in (0, 0.1]")
        if not 8 <= self.batch_size <= 4096:
            problems.append(f"batch_size={self.batch_size} must be 8..4096")
        if problems:
            raise ConfigError("game: " + "; ".join(problems))


class ToyGame:
    """One seeded game of G against D on a toy distribution; deterministic for its config."""

    def __init__(self, cfg: GameConfig = GameConfig()) -> None:
        self.cfg = cfg
        self.mixture = drawn_mixture(cfg.points) if cfg.data == "drawn" else _named_mixture(cfg.data)
        self.dim = self.mixture.centers.shape[1]
        self.steps = 0
        self.history: list[dict[str, float]] = []  # one row per view: step, value, theorem_value, jsd
        self._rng = np.random.default_rng(cfg.seed)
        self._gen = torch.Generator().manual_seed(cfg.seed)
        with torch.random.fork_rng(devices=[]):  # seeded init, the caller's RNG left as it was
            torch.manual_seed(cfg.seed)
            if self.dim == 1:
                self.G: nn.Module = MonotoneGenerator(units=32)
                self.D = ToyDiscriminator(1, 64, layers=2, activation=nn.SiLU)
            else:
                self.G = ToyGenerator(2, latent_dim=2, hidden=64, layers=3)
                self.D = ToyDiscriminator(2, 64, layers=3)
        self._opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas=(0.5, 0.999))
        self._opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=(0.5, 0.999))
        self._shown_z = torch.randn(SHOWN_POINTS, self._latent_dim, generator=torch.Generator().manual_seed(cfg.seed))
        self.g_grad_norm: float | None = None  # of G's parameters at its last update
        # The training monitor's rules over each play's stats; advice as for the game's own settings
        self.health = GANHealth(cfg.g_loss, "Try another G loss, k or learning rates: they change mid-game")
        self.warnings: list[str] = []
        self._lock_extent()

    def play(self, n: int, players: Players = "both") -> None:
        """n steps: each ``k`` discriminator updates on fresh batches then one generator update ("both"), the
        ``k`` D updates alone ("D") or the G update alone ("G"). ``steps`` counts G updates."""
        if not 1 <= n <= MAX_STEPS_PER_PLAY:
            raise ConfigError(f"play takes 1..{MAX_STEPS_PER_PLAY} steps at a time, got {n}")
        for _ in range(n):
            if players != "G":
                for _ in range(self.cfg.k):
                    self._d_step()
            if players != "D":
                self._g_step()
        if self.g_grad_norm is not None:
            self.warnings = self.health(self._stats())

    def _stats(self) -> dict[str, float]:
        """What a GAN run logs, for the health monitor's rules (a D that wins, vanishing gradients, collapse)."""
        assert self.g_grad_norm is not None
        with torch.no_grad():
            real, fake = self._real(self.cfg.batch_size), self._fake(self.cfg.batch_size)
            real_logits, fake_logits = self.D(real), self.D(fake)
            return {
                "D/D(x)": float(real_logits.sigmoid().mean()),
                "D/D(G(z))": float(fake_logits.sigmoid().mean()),
                "G/loss": float(G_LOSSES[self.cfg.g_loss](fake_logits)),
                "G/grad_norm": self.g_grad_norm,
                "G/diversity": float(batch_diversity(fake, real, n=self.cfg.batch_size)),
            }

    def retune(self, **changes: Any) -> None:
        """Change k, ``lr_d``, ``lr_g`` or ``g_loss`` mid-game (the data, batch and seed make a new game)."""
        fixed = sorted(set(changes) - {"k", "lr_d", "lr_g", "g_loss"})
        if fixed:
            raise ConfigError(f"game: {', '.join(fixed)} cannot change mid-game; start a new game")
        self.cfg = replace(self.cfg, **changes)  # checked as a new config is
        for optimiser, lr in ((self._opt_d, self.cfg.lr_d), (self._opt_g, self.cfg.lr_g)):
            for group in optimiser.param_groups:
                group["lr"] = lr

    def _d_step(self) -> None:
        with torch.no_grad():
            fake = self._fake(self.cfg.batch_size)
        self._opt_d.zero_grad()
        d_minimax(self.D(self._real(self.cfg.batch_size)), self.D(fake)).backward()
        self._opt_d.step()

    def _g_step(self) -> None:
        self._opt_g.zero_grad()
        self.D.requires_grad_(False)
        try:
            G_LOSSES[self.cfg.g_loss](self.D(self._fake(self.cfg.batch_size))).backward()
        finally:
            self.D.requires_grad_(True)
        self.g_grad_norm = float(
            torch.nn.utils.get_total_norm([p.grad for p in self.G.parameters() if p.grad is not None])
        )
        self._opt_g.step()
        self.steps += 1

    def view(self) -> dict[str, Any]:
        """Where the game stands, JSON-ready; also appends this step's numbers to ``history``."""
        with torch.no_grad():
            shown = self.G(self._shown_z)  # G's points from fixed latents: they move only when G does
            view = self._view_1d() if self.dim == 1 else self._view_2d(shown)
        # Each G loss's push on the shown points, both side by side whichever the game plays (the saturating
        # one's vanishes where D is sure the points are fake); in 2-D the played loss's are drawn as arrows.
        pulls = {loss: self._pull(shown, loss) for loss in G_LOSSES}
        if self.dim == 2:
            view["arrows"] = torch.cat([shown[:ARROWS], pulls[self.cfg.g_loss][:ARROWS]], dim=1).tolist()
        row = {
            "step": self.steps,
            "value": view["value"],
            "theorem_value": view["theorem_value"],
            "jsd": view["jsd"],
            "g_grad_norm": self.g_grad_norm,
            "push": {loss: float(pull.norm(dim=1).mean()) for loss, pull in pulls.items()},
        }
        if not self.history or self.history[-1]["step"] != self.steps:
            self.history.append(row)
        else:  # D moved alone: the same G step, a new D
            self.history[-1] = row
        return {
            "data": self.cfg.data,
            "settings": {"k": self.cfg.k, "lr_d": self.cfg.lr_d, "lr_g": self.cfg.lr_g, "g_loss": self.cfg.g_loss},
            "warnings": list(self.warnings),  # the health monitor's, on the last play (mode collapse, ...)
            "dim": self.dim,
            "step": self.steps,
            "minus_log_4": -th.LOG4,
            "history": list(self.history),
            **view,
        }

    # ------------------------------------------------------------------ internals

    def _real(self, n: int) -> torch.Tensor:
        return torch.from_numpy(self.mixture.sample(self._rng, n)[0])

    @property
    def _latent_dim(self) -> int:
        if self.dim == 1:
            return 1
        assert isinstance(self.G, ToyGenerator)  # as __init__ builds it for 2-D data
        return self.G.latent_dim

    def _fake(self, n: int) -> torch.Tensor:
        return self.G(torch.randn(n, self._latent_dim, generator=self._gen))

    def _pull(self, fake: torch.Tensor, loss: str) -> torch.Tensor:
        """[N, D]: minus the gradient of G loss ``loss`` at each generated point (summed, not averaged, over
        the points, so that each point's gradient is its own): where that loss pushes it."""
        with torch.enable_grad():
            x = fake.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(G_LOSSES[loss](self.D(x)) * len(x), x)
        return -grad

    def _lock_extent(self) -> None:
        """The 2-D view's square, fixed for the whole game so that frames can be compared."""
        lo = float((self.mixture.centers - 4 * self.mixture.stds[:, None]).min()) - 0.5
        hi = float((self.mixture.centers + 4 * self.mixture.stds[:, None]).max()) + 0.5
        self.extent = (lo, hi)

    def _view_1d(self) -> dict[str, Any]:
        assert isinstance(self.G, MonotoneGenerator)  # as __init__ builds it for 1-D data
        x = covering_grid(self.mixture, self.G, GRID_1D)
        p_data, p_g = self.mixture.density(x[:, None]), generator_density(self.G, x)
        logits = logits_on(self.D, x)
        jsd = th.jsd_integral(x, p_data, p_g)
        return {
            "x": x.tolist(),
            "p_data": p_data.tolist(),
            "p_g": p_g.tolist(),
            "d": expit(logits).tolist(),
            "d_star": expit(th.optimal_logit(p_data, p_g)).tolist(),
            "value": th.value_integral(x, p_data, p_g, logits),
            "theorem_value": th.theorem_value(jsd),
            "jsd": jsd,
        }

    def _view_2d(self, shown: torch.Tensor) -> dict[str, Any]:
        lo, hi = self.extent
        ticks = np.linspace(lo, hi, GRID_2D)
        gx, gy = np.meshgrid(ticks, ticks, indexing="xy")  # row r is y = ticks[r], column c is x = ticks[c]
        cells = np.stack([gx.ravel(), gy.ravel()], axis=1)
        p_data = self.mixture.density(cells).reshape(GRID_2D, GRID_2D)
        p_g = _kde(self._fake(KDE_SAMPLES).double().numpy(), cells, hi - lo).reshape(GRID_2D, GRID_2D)
        d = expit(self.D(torch.from_numpy(cells).float()).double().numpy()).reshape(GRID_2D, GRID_2D)
        value = minimax_value(self.D(self._real(MC_SAMPLES)).double(), self.D(self._fake(MC_SAMPLES)).double()).item()
        jsd = _jsd_on_grid(ticks, p_data, p_g)
        return {
            "extent": [lo, hi],
            "grid": GRID_2D,
            "d": d.tolist(),
            "d_star": expit(th.optimal_logit(p_data, p_g)).tolist(),
            "real": self._real(SHOWN_POINTS).tolist(),
            "fake": shown.tolist(),
            "value": value,
            "theorem_value": th.theorem_value(jsd),
            "jsd": jsd,
        }


def _named_mixture(data: str) -> GaussianMixture:
    name, settings = DATA[data]
    return TOY_CONFIGS[name](name=name, **settings).mixture()


def drawn_mixture(points: tuple[tuple[float, float], ...]) -> GaussianMixture:
    """The distribution a user drew: an equal-weight Gaussian of width DRAWN_STD at each point."""
    n = len(points)
    return GaussianMixture(np.array(points, dtype=np.float64), np.full(n, DRAWN_STD), np.full(n, 1.0 / n))


def _kde(points: np.ndarray, cells: np.ndarray, side: float) -> np.ndarray:
    """The density of 2-D ``points`` at ``cells``: scipy's Gaussian KDE (Scott's bandwidth), or, for points on a
    line or one spot (a collapsed G, whose covariance is singular), an isotropic one of bandwidth side / GRID_2D."""
    try:
        return stats.gaussian_kde(points.T)(cells.T)
    except np.linalg.LinAlgError:
        h = side / GRID_2D
        sq = ((cells[:, None, :] - points[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * sq / h**2).mean(1) / (2 * np.pi * h**2)


def _jsd_on_grid(ticks: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """JSD of two 2-D densities tabulated on ``ticks`` x ``ticks``, each renormalised over the square."""
    mass_p, mass_q = (integrate.trapezoid(integrate.trapezoid(d, ticks, axis=1), ticks) for d in (p, q))
    if min(mass_p, mass_q) <= 0:  # one has no mass on the square (a collapsed G off it): as disjoint as two can be
        return float(np.log(2))
    p, q = p / mass_p, q / mass_q
    m = 0.5 * (p + q)
    log_p = np.log(np.divide(p, m, out=np.ones_like(m), where=p > 0))
    log_q = np.log(np.divide(q, m, out=np.ones_like(m), where=q > 0))
    integrand = 0.5 * (p * log_p + q * log_q)
    return float(integrate.trapezoid(integrate.trapezoid(integrand, ticks, axis=1), ticks))
