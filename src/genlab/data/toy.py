"""Toy Gaussian mixtures for GAN experiments: points, not images, with known densities.

1-D: one Gaussian and a two-component mixture (the GAN paper's 1-D picture, and the
simplest setting in which mode collapse shows). 2-D: the "ring" of 8 Gaussians on a
circle of radius 2 (sigma 0.02) and the "grid" of 25 Gaussians at {-4,-2,0,2,4}^2
(sigma 0.05), the mode-collapse benchmarks of VEEGAN (Srivastava et al. 2017) and
PacGAN (Lin et al. 2018). Labels are the index of the component each point came from.

``mixture_modes`` and ``density_1d`` expose the true distributions to metrics and theory code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from genlab.config import ANY_NUMBER, POSITIVE, SEED, DataConfig, Range, at_least
from genlab.data.base import Classes, Points, Spec, TensorDataset
from genlab.errors import ConfigError
from genlab.registry import register_dataset

_SPLIT_STREAM = {"train": 0, "test": 1}  # independent random streams per split from one seed


@dataclass(frozen=True)
class GaussianMixture:
    """Isotropic Gaussian mixture: centers [M, D], stds [M], weights [M] summing to 1 (float64)."""

    centers: np.ndarray
    stds: np.ndarray
    weights: np.ndarray

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n points float32 [n, D] and the component of each, int64 [n]."""
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.centers.shape[1]))
        points = self.centers[component] + self.stds[component, None] * noise
        return points.astype(np.float32), component.astype(np.int64)

    def density(self, points: np.ndarray) -> np.ndarray:
        """Exact density at ``points`` [..., D] -> float64 [...]."""
        points = np.asarray(points, dtype=np.float64)[..., None, :]  # broadcast against the M components
        squared = ((points - self.centers) ** 2).sum(-1) / self.stds**2
        dim = self.centers.shape[1]
        pdf = np.exp(-0.5 * squared) / (self.stds * math.sqrt(2.0 * math.pi)) ** dim
        return pdf @ self.weights


@dataclass
class ToyConfig(DataConfig):
    """Keys shared by every toy set."""

    n_train: int = 100_000
    n_test: int = 10_000
    seed: int = 0  # train and test draw from separate streams of this seed
    bounds: ClassVar[dict[str, Range]] = {"n_train": at_least(1), "n_test": at_least(1), "seed": SEED}
    example: ClassVar[dict] = {"n_train": 256, "n_test": 64}

    def mixture(self) -> GaussianMixture:
        raise NotImplementedError


@dataclass
class Gaussian1DConfig(ToyConfig):
    """``toy_gaussian_1d``: N(mean, std^2)."""

    mean: float = 4.0
    std: float = 0.5
    bounds: ClassVar[dict[str, Range]] = {"mean": ANY_NUMBER, "std": POSITIVE}

    def mixture(self) -> GaussianMixture:
        return GaussianMixture(np.array([[self.mean]]), np.array([self.std]), np.array([1.0]))


@dataclass
class Mixture1DConfig(ToyConfig):
    """``toy_mixture_1d``: sum_k weights[k] N(means[k], stds[k]^2); weights are normalised."""

    means: tuple[float, ...] = (-2.0, 2.0)
    stds: tuple[float, ...] = (0.5, 0.5)
    weights: tuple[float, ...] = (0.5, 0.5)
    bounds: ClassVar[dict[str, Range]] = {"means": ANY_NUMBER, "stds": POSITIVE, "weights": POSITIVE}

    def __post_init__(self) -> None:
        if not len(self.means) == len(self.stds) == len(self.weights) >= 1:
            raise ConfigError(f"{self.name}: means, stds and weights must be equally long, non-empty")

    def mixture(self) -> GaussianMixture:
        means, stds, weights = (np.asarray(v, dtype=np.float64) for v in (self.means, self.stds, self.weights))
        return GaussianMixture(means[:, None], stds, weights / weights.sum())


@dataclass
class RingConfig(ToyConfig):
    """``toy_ring``: `modes` equal Gaussians spaced evenly on a circle, the first at angle 0."""

    modes: int = 8
    radius: float = 2.0
    sigma: float = 0.02
    bounds: ClassVar[dict[str, Range]] = {"modes": at_least(1), "radius": POSITIVE, "sigma": POSITIVE}

    def mixture(self) -> GaussianMixture:
        angles = 2.0 * math.pi * np.arange(self.modes) / self.modes
        centers = self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return _equal_mixture(centers, self.sigma)


@dataclass
class GridConfig(ToyConfig):
    """``toy_grid``: side x side equal Gaussians on a square grid centred at the origin."""

    side: int = 5
    spacing: float = 2.0
    sigma: float = 0.05
    bounds: ClassVar[dict[str, Range]] = {"side": at_least(1), "spacing": POSITIVE, "sigma": POSITIVE}

    def mixture(self) -> GaussianMixture:
        ticks = (np.arange(self.side) - (self.side - 1) / 2.0) * self.spacing
        gx, gy = np.meshgrid(ticks, ticks, indexing="ij")  # row-major: x-major order of modes
        return _equal_mixture(np.stack([gx.ravel(), gy.ravel()], axis=1), self.sigma)


CONFIGS: dict[str, type[ToyConfig]] = {
    "toy_gaussian_1d": Gaussian1DConfig,
    "toy_mixture_1d": Mixture1DConfig,
    "toy_ring": RingConfig,
    "toy_grid": GridConfig,
}


def build(cfg: ToyConfig, split: str) -> TensorDataset:
    """Sample the split: ``points`` float32 [N, D], ``label`` int64 [N] = mixture component."""
    mixture = cfg.mixture()
    n = cfg.n_train if split == "train" else cfg.n_test
    points, component = mixture.sample(np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]]), n)
    # Rounded so that cos(pi/2) = 6e-17 reads as 0; + 0.0 turns -0 into 0.
    centers = np.round(mixture.centers, 6) + 0.0
    names = tuple("(" + ", ".join(f"{c:.3g}" for c in center) + ")" for center in centers)
    spec: Spec = {"points": Points(points.shape[1]), "label": Classes(names)}
    return TensorDataset(cfg.name, spec, {"points": torch.from_numpy(points), "label": torch.from_numpy(component)})


for _name, _cls in CONFIGS.items():
    register_dataset(_name, _cls)(build)


def mixture_modes(kind: str | ToyConfig) -> tuple[np.ndarray, float]:
    """Mode centres float64 [M, D] and their common std, e.g. for mode-coverage metrics.

    kind: a toy config, or a dataset name ("toy_ring", or short "ring") for its defaults.
    """
    mixture = _mixture_of(kind)
    if not np.all(mixture.stds == mixture.stds[0]):
        raise ValueError(f"{kind!r} has components of different widths; use its .mixture() instead")
    return mixture.centers.copy(), float(mixture.stds[0])


def density_1d(spec: str | ToyConfig | GaussianMixture, x: np.ndarray) -> np.ndarray:
    """Exact density of a 1-D toy distribution at points x (any shape) -> float64, same shape."""
    mixture = spec if isinstance(spec, GaussianMixture) else _mixture_of(spec)
    if mixture.centers.shape[1] != 1:
        raise ValueError(f"density_1d needs a 1-D distribution, got {mixture.centers.shape[1]}-D")
    x = np.asarray(x, dtype=np.float64)[..., None]  # broadcast against the M components
    z = (x - mixture.centers[:, 0]) / mixture.stds
    pdf = np.exp(-0.5 * z**2) / (mixture.stds * math.sqrt(2.0 * math.pi))
    return pdf @ mixture.weights


def _mixture_of(kind: str | ToyConfig) -> GaussianMixture:
    if isinstance(kind, ToyConfig):
        return kind.mixture()
    name = kind if kind in CONFIGS else f"toy_{kind}"
    if name not in CONFIGS:
        raise ValueError(f"unknown toy distribution {kind!r}; one of {', '.join(CONFIGS)}")
    return CONFIGS[name](name=name).mixture()


def _equal_mixture(centers: np.ndarray, sigma: float) -> GaussianMixture:
    m = len(centers)
    return GaussianMixture(centers.astype(np.float64), np.full(m, float(sigma)), np.full(m, 1.0 / m))
