"""BigGAN's orthogonal regularisation of G's weights (Brock et al. 2019; 1e-4 in the paper)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import RegulariserConfig
from genlab.losses import gan as L
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term


@dataclass
class OrthogonalConfig(RegulariserConfig):
    name: str = "ortho"
    weight: float = 1e-4  # beta


@register_regulariser("ortho", OrthogonalConfig)
class Orthogonal(Term):
    stat, phase = "ortho", "G"

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        self.G = modules["G"]

    def penalty(self, p):
        ortho = L.orthogonal_penalty(self.G)
        return ortho, ortho.detach()
