"""MSGAN's mode-seeking term (Mao et al. 2019) for a G whose only noise is its dropout (pix2pix).

G translates each source again under an independent dropout draw, and ``weight / (ratio + 1e-5)``
falls as the two translations spread, with ``ratio = mean|G(x; m1) - G(x; m2)| / d_masks`` (the
reciprocal form of the authors' code). The masks' own L1 distance is replaced by its expectation
``d_masks = 2p(1 - p)`` for drop rate p. Logged: the spread.
"""

from __future__ import annotations

from dataclasses import dataclass

from genlab.config import RegulariserConfig
from genlab.errors import ConfigError
from genlab.registry import register_regulariser
from genlab.training.regularisers import Term

MODE_SEEKING_EPS = 1e-5  # MSGAN's, in the reciprocal of the distance ratio


@dataclass
class ModeSeekingConfig(RegulariserConfig):
    name: str = "mode_seeking"
    weight: float = 1.0  # lambda, as in the authors' code


@register_regulariser("mode_seeking", ModeSeekingConfig)
class ModeSeeking(Term):
    stat, phase, objectives = "mode_spread", "G", ("pix2pix",)

    def __init__(self, cfg, modules, objective):
        super().__init__(cfg, modules, objective)
        dropout = getattr(modules["G"], "dropout", 0.0)
        if dropout == 0:
            raise ConfigError(
                "the mode_seeking regulariser needs G's noise, its dropout, but model.g_dropout is 0; "
                "set model.g_dropout (0.5 in pix2pix) or drop the term"
            )
        self.mask_distance = 2 * dropout * (1 - dropout)

    @property
    def coefficient(self) -> float:
        return 1.0  # the weight divides by the ratio inside the penalty (MSGAN's reciprocal form)

    def penalty(self, p):
        assert p.generator is not None
        spread = (p.fake - p.generator(p.batch["source"]).float()).abs().mean()  # a second, independent draw
        return self.weight / (spread / self.mask_distance + MODE_SEEKING_EPS), spread.detach()
