"""StackGAN's conditioning augmentation (Zhang et al. 2017): the KL of a text G's condition distribution to
N(0, I), implied by a text-conditional G at StackGAN's weight of 1."""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import RegulariserConfig
from genlab.errors import ConfigError
from genlab.models.protocols import TextConditional
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term


@dataclass
class ConditionKLConfig(RegulariserConfig):
    name: str = "condition_kl"


@register_regulariser("condition_kl", ConditionKLConfig)
class ConditionKL(Term):
    stat, phase, g_output = "condition_kl", "G", "with_kl"

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        if not isinstance(modules["G"], TextConditional):
            raise ConfigError(
                f"the condition_kl regulariser is the KL of a text G's conditioning augmentation; this "
                f"{type(modules['G']).__name__} has none: drop it from objective.regularisers"
            )

    @classmethod
    def implied(cls, objective, modules):
        return isinstance(modules.get("G"), TextConditional)

    def penalty(self, p):
        assert p.g_output is not None
        return p.g_output, p.g_output.detach()
