"""StyleGAN2's path-length regularisation (Karras et al. 2020): (|J_w^T y| - a)^2 over the G step's own fakes,
lazily every 4 G steps in the paper; ``a`` is the moving mean of the path lengths (its state, checkpointed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from genlab.config import Range, RegulariserConfig
from genlab.distributed import mean_over_ranks
from genlab.errors import ConfigError
from genlab.models.protocols import StyleBased
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term


@dataclass
class PathLengthConfig(RegulariserConfig):
    name: str = "path_length"
    weight: float = 2.0
    every: int = 4
    decay: float = 0.01  # moving-average rate of the target path length
    bounds: ClassVar[dict[str, Range]] = {"decay": Range(0, 1, low_open=True)}


@register_regulariser("path_length", PathLengthConfig)
class PathLength(Term):
    """The moving mean follows the mean over every process's fakes, so all processes of a torchrun keep the
    same ``a`` and rank 0's checkpoint resumes each of them exactly."""

    stat, phase, g_output = "path_length", "G", "with_path_lengths"

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        if not isinstance(modules["G"], StyleBased):
            raise ConfigError(
                f"the path_length regulariser regularises a style-based generator's mapping; this "
                f"{type(modules['G']).__name__} has none: use model.name=stylegan or drop the term"
            )
        assert isinstance(cfg, PathLengthConfig)
        self.decay, self.mean = cfg.decay, 0.0

    def penalty(self, p):
        assert p.g_output is not None
        lengths = p.g_output
        mean = mean_over_ranks(lengths.mean().item())
        self.mean += self.decay * (mean - self.mean)
        return (lengths - self.mean).square().mean(), mean

    def state_dict(self):
        return {"pl_mean": self.mean}

    def load_state_dict(self, state):
        self.mean = float(state.get("pl_mean", 0.0))  # runs from before the term: no target yet
