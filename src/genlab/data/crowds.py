"""Crowds simulated on the fly with the social-force model (Helbing & Molnár, Phys. Rev. E 1995), for
trajectory prediction (Social GAN, Gupta et al. 2018): each example is a scene of ``agents`` people
crossing a four-way junction, their positions in metres every ``dt`` seconds.

Each person walks in from one of the four roads towards the junction, then leaves by one of the
other three (left, straight on or right, with ``exit_probs``): the exit is drawn when the scene is,
and shows once the person is within a metre of the junction, mostly after the ``observed`` steps (with
the defaults, 14 % of those who turn have turned by more than 15 degrees by the last observed step,
measured on 4,000 scenes). So the future of an observed path is mostly one-to-many, the case a
generative predictor exists for, and a predictor that averages the three exits walks where nobody walks.

The social force on person i: a drive towards the current waypoint at the desired speed v0_i with
relaxation time ``relaxation``, (v0_i e_i - v_i) / tau, plus a repulsion from every other person j,
(V0 / sigma) exp(-d_ij / sigma) along the line from j to i (the gradient of the paper's potential
V0 exp(-b / sigma), with the circular distance d_ij for its ellipse's semi-axis b), weighted by 1 when
j is within the 200-degree field of view and by 0.5 behind it; speeds are capped at 1.3 v0_i. The
paper's values: V0 = 2.1 m^2/s^2, sigma = 0.3 m, tau = 0.5 s, v0 ~ N(1.34, 0.26^2) m/s. Integrated
with explicit Euler steps of ``dt`` / 4; no walls (the roads are open). The 1995 potential is soft: two
people come within 0.2 m of each other (centre to centre) in 11 % of scenes, against 32 % without it
(tests/test_social_gan.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from genlab.config import FRACTION, POSITIVE, SEED, DataConfig, Range, at_least
from genlab.data.base import Spec, TensorDataset, Trajectories
from genlab.errors import ConfigError
from genlab.registry import register_dataset

_SPLIT_STREAM = {"train": 0, "test": 1}  # independent random streams per split from one seed
SUBSTEPS = 4  # Euler steps per recorded step
ROADS = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # walking directions of the four approaches
EXIT_DISTANCE = 12.0  # metres from the junction of the exit waypoint
ARRIVED = 1.0  # metres from a waypoint at which a person heads for the next
SPACING = 1.2  # metres between people who start on the same road
VIEW_COS = math.cos(math.radians(100))  # the field of view is 200 degrees
BEHIND = 0.5  # the weight of the repulsion from someone out of view
MAX_SPEED = 1.3  # times the desired speed


@dataclass
class CrowdsConfig(DataConfig):
    """Keys of the ``crowds`` data set (the simulator's parameters are the paper's by default)."""

    n_train: int = 8000  # scenes
    n_test: int = 1000
    seed: int = 0  # train and test draw from separate streams of this seed
    agents: int = 4  # people per scene
    observed: int = 8  # steps a predictor sees (Social GAN: 8, 3.2 s)
    predicted: int = 12  # steps it predicts (Social GAN: 12, 4.8 s)
    dt: float = 0.4  # seconds between steps (ETH/UCY's 2.5 frames per second)
    exit_probs: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # left, straight on, right
    desired_speed: float = 1.34  # m/s, mean of v0
    speed_sd: float = 0.26  # m/s
    relaxation: float = 0.5  # s, tau
    repulsion: float = 2.1  # m^2/s^2, V0
    repulsion_range: float = 0.3  # m, sigma
    start_distance: tuple[float, float] = (4.0, 6.0)  # metres before the junction where the first person starts
    lane_width: float = 1.0  # metres either side of a road's centre line
    bounds: ClassVar[dict[str, Range]] = {
        "n_train": at_least(1),
        "n_test": at_least(1),
        "seed": SEED,
        "agents": at_least(1),
        "observed": at_least(2),
        "predicted": at_least(1),
        "dt": POSITIVE,
        "exit_probs": FRACTION,
        "desired_speed": POSITIVE,
        "speed_sd": Range(0),
        "relaxation": POSITIVE,
        "repulsion": Range(0),
        "repulsion_range": POSITIVE,
        "start_distance": Range(0),
        "lane_width": Range(0),
    }
    example: ClassVar[dict] = {"n_train": 64, "n_test": 16}

    def __post_init__(self) -> None:
        if not math.isclose(sum(self.exit_probs), 1.0, abs_tol=1e-6):
            raise ConfigError(f"data.exit_probs (left, straight on, right) must sum to 1; got {list(self.exit_probs)}")
        if self.start_distance[0] > self.start_distance[1]:
            raise ConfigError(f"data.start_distance must be [low, high]; got {list(self.start_distance)}")


def rotate(v: np.ndarray, quarter_turns: np.ndarray) -> np.ndarray:
    """Vectors [..., 2] turned anticlockwise by ``quarter_turns`` [...] times 90 degrees."""
    angle = quarter_turns * (math.pi / 2)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def initial_scenes(cfg: CrowdsConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Starting positions, velocities, desired speeds and the two waypoints (junction, exit) of every person."""
    a = cfg.agents
    road = rng.integers(0, 4, size=(n, a))
    heading = ROADS[road]  # [n, a, 2]
    # people on the same road start one behind the other
    ahead = np.zeros((n, a))
    for k in range(1, a):
        ahead[:, k] = (road[:, :k] == road[:, k : k + 1]).sum(axis=1)
    distance = rng.uniform(*cfg.start_distance, size=(n, a)) + SPACING * ahead
    lateral = rng.uniform(-cfg.lane_width, cfg.lane_width, size=(n, a))
    side = rotate(heading, np.ones((n, a)))  # the road's left
    position = -heading * distance[..., None] + side * lateral[..., None]
    speed = np.clip(rng.normal(cfg.desired_speed, cfg.speed_sd, size=(n, a)), 0.3, 2.5)
    turn = rng.choice(3, size=(n, a), p=np.asarray(cfg.exit_probs))  # 0 left, 1 straight on, 2 right
    exit_heading = rotate(heading, np.array([1, 0, -1])[turn])
    junction = side * lateral[..., None] * 0.5  # cross near the centre, keeping to the side one came in on
    return {
        "position": position,
        "velocity": heading * speed[..., None],
        "speed": speed,
        "waypoints": np.stack([junction, exit_heading * EXIT_DISTANCE + junction], axis=2),  # [n, a, 2, 2]
        "turn": turn,
    }


def social_forces(position: np.ndarray, velocity: np.ndarray, cfg: CrowdsConfig) -> np.ndarray:
    """The sum of the repulsions on each person from the others: [n, a, 2] -> [n, a, 2] in m/s^2."""
    offset = position[:, :, None, :] - position[:, None, :, :]  # from j to i: [n, i, j, 2]
    distance = np.linalg.norm(offset, axis=-1)
    distance[:, np.arange(position.shape[1]), np.arange(position.shape[1])] = np.inf
    direction = offset / np.maximum(distance, 1e-9)[..., None]
    magnitude = cfg.repulsion / cfg.repulsion_range * np.exp(-distance / cfg.repulsion_range)
    speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
    facing = velocity / np.maximum(speed, 1e-9)  # [n, i, 2]
    in_view = (facing[:, :, None, :] * -direction).sum(-1) >= VIEW_COS  # is j ahead of i
    weight = np.where(in_view, 1.0, BEHIND)
    return (direction * (magnitude * weight)[..., None]).sum(axis=2)


def simulate(cfg: CrowdsConfig, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes: paths float32 [n, agents, observed + predicted, 2] and each person's exit int64 [n, agents]."""
    state = initial_scenes(cfg, rng, n)
    position, velocity, speed = state["position"], state["velocity"], state["speed"]
    target = np.zeros(position.shape[:2], dtype=np.int64)  # the waypoint each person heads for
    steps, h = cfg.observed + cfg.predicted, cfg.dt / SUBSTEPS
    paths = np.empty((n, cfg.agents, steps, 2))
    rows, people = np.indices(target.shape)
    for t in range(steps):
        paths[:, :, t] = position
        for _ in range(SUBSTEPS):
            waypoint = state["waypoints"][rows, people, target]
            to_go = waypoint - position
            gap = np.linalg.norm(to_go, axis=-1)
            target = np.where((gap < ARRIVED) & (target == 0), 1, target)
            desired = to_go / np.maximum(gap, 1e-9)[..., None] * speed[..., None]
            force = (desired - velocity) / cfg.relaxation + social_forces(position, velocity, cfg)
            velocity = velocity + h * force
            norm = np.linalg.norm(velocity, axis=-1, keepdims=True)
            velocity = velocity * np.minimum(1.0, MAX_SPEED * speed[..., None] / np.maximum(norm, 1e-9))
            position = position + h * velocity
    return paths.astype(np.float32), state["turn"].astype(np.int64)


@register_dataset("crowds", CrowdsConfig)
def build(cfg: CrowdsConfig, split: str) -> TensorDataset:
    """Simulate the split: ``paths`` float32 [N, agents, observed + predicted, 2] in metres."""
    n = cfg.n_train if split == "train" else cfg.n_test
    paths, _ = simulate(cfg, np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]]), n)
    spec: Spec = {"paths": Trajectories(cfg.agents, cfg.observed + cfg.predicted, cfg.observed)}
    return TensorDataset("crowds", spec, {"paths": torch.from_numpy(paths)})
