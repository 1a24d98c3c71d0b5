"""R1 (Mescheder et al. 2018): gamma/2 E[||grad D(x)||^2] on real data; with ``every`` > 1 it is StyleGAN2's lazy
R1 (every 16 D steps in the paper)."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import RegulariserConfig
from genlab.losses import gan as L
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term, refuse_batch_norm


@dataclass
class R1Config(RegulariserConfig):
    name: str = "r1"
    weight: float = 1.0  # gamma (10 in Mescheder et al. on CelebA; 0.01-10 in StyleGAN2 by data set)


@register_regulariser("r1", R1Config)
class R1(Term):
    stat, phase, needs_real_grad = "r1", "D", True

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        refuse_batch_norm(modules["D"], "r1")

    @property
    def coefficient(self) -> float:
        return 0.5 * self.weight  # gamma / 2, as in Mescheder et al.

    def penalty(self, p):
        assert p.real_logits is not None and p.real is not None
        r1 = L.r1_penalty(p.real_logits, p.real)
        return r1, r1.detach()
