"""WGAN-GP's gradient penalty (Gulrajani et al. 2017): lambda E[(||grad D(x_hat)|| - 1)^2] on interpolates of
real and fake images; implied by ``objective.loss=wgan_gp`` at the paper's lambda of 10."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import RegulariserConfig
from genlab.losses import gan as L
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term, refuse_batch_norm


@dataclass
class GradientPenaltyConfig(RegulariserConfig):
    name: str = "gp"
    weight: float = 10.0  # lambda


@register_regulariser("gp", GradientPenaltyConfig)
class GradientPenalty(Term):
    stat, phase = "gp", "D"

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        refuse_batch_norm(modules["D"], "gp")

    @classmethod
    def implied(cls, objective, modules):
        return getattr(objective, "loss", None) == "wgan_gp"

    def penalty(self, p):
        assert p.critic is not None and p.real is not None
        gp = L.gradient_penalty(p.critic, p.real, p.fake)
        return gp, gp.detach()
