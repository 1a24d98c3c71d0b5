"""GAN regularisers as terms: each one object with its weight, its interval and the phase it joins.

A term reads what its phase's loss computed (:class:`Pass`) and returns a penalty; the GAN step
adds ``scale * penalty`` to the phase's loss and logs the term's value under its name. Lazy
regularisation (Karras et al. 2020, stylegan2-ada's loss.py): a term with ``every = k`` runs on
every k-th step of its phase, weighted by k, so that its average pull stays the same.

A new regulariser is a subclass here, built from the objective's config by its ``from_config``
(which also refuses what it cannot regularise), and one entry in its objective's list
(:data:`TERMS` for the GAN step, :data:`PIX2PIX_TERMS` for pix2pix's). The steps' losses never
name a term. A list is also the order its terms join their phase's loss in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from genlab.data.base import Batch
from genlab.distributed import mean_over_ranks
from genlab.errors import ConfigError
from genlab.losses import gan as L
from genlab.models.protocols import StyleBased, TextConditional

# The GAN objective's config, which gan.py defines: it imports this module, so the type is not named here.
GANConfig = Any


@dataclass
class Pass:
    """What one D or G step computed, for its terms to read."""

    batch: Batch
    fake: Tensor  # G's images of this step (constants in D's step)
    cond: tuple[Tensor, ...]  # what G and D were conditioned on (labels, captions), or ()
    real: Tensor | None = None  # D's step: the real images (requiring grad when a due term needs_real_grad)
    real_logits: Tensor | None = None  # D's step: D(real)
    critic: Callable[[Tensor], Tensor] | None = None  # D's step: D as the step calls it, with the condition bound
    g_output: Tensor | None = None  # G's step: the extra output of G's forward that a due term asked for
    generator: Callable[[Tensor], Tensor] | None = None  # G's step: G as the step calls it (a second noise draw)


class Term(ABC):
    """One regulariser of one phase ("D" or "G"), run on every ``every``-th step of it."""

    name: ClassVar[str]  # its key in the logged stats
    phase: ClassVar[Literal["D", "G"]]
    needs_real_grad: ClassVar[bool] = False  # D's step must make the real images require grad (R1)
    # A keyword of G's forward that makes it return (images, this term's input) from inside the forward, so that
    # the computation runs through G's DDP wrapper (the path lengths, the conditioning KL); None: no such input.
    g_output: ClassVar[str | None] = None

    def __init__(self, weight: float, every: int = 1) -> None:
        self.weight, self.every = weight, every

    @property
    def scale(self) -> float:
        """The factor of the penalty in the phase's loss: the weight, times the interval of a lazy term."""
        return self.weight * self.every

    def due(self, steps: int) -> bool:
        """Whether the phase's step after ``steps`` earlier ones runs this term."""
        return steps % self.every == 0

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: GANConfig, modules: dict[str, nn.Module]) -> Term | None:
        """The term ``cfg`` asks for (None when it is off); ConfigError when the modules cannot take it."""

    @abstractmethod
    def penalty(self, p: Pass) -> tuple[Tensor, Tensor | float]:
        """(the penalty to add, scaled, to the loss; the value to log)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - a default: stateless terms keep it
        pass


def batch_norms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The layers of ``module`` that normalise over the batch (BatchNorm1d/2d/3d, SyncBatchNorm)."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` normalises over the batch somewhere (gradient penalties are per-example)."""
    return bool(batch_norms(module))


def _refuse_batch_norm(D: nn.Module, what: str) -> None:
    if has_batch_norm(D):
        raise ConfigError(
            f"gradient penalties ({what}) are per-example and invalid under batch norm in D; "
            "set model.d_norm=none or model.spectral_norm=true"
        )


class GradientPenalty(Term):
    """WGAN-GP (Gulrajani et al. 2017): lambda E[(||grad D(x_hat)|| - 1)^2] on interpolates of real and fake."""

    name, phase = "gp", "D"

    @classmethod
    def from_config(cls, cfg, modules):
        if cfg.loss != "wgan_gp":
            return None
        _refuse_batch_norm(modules["D"], "objective.loss=wgan_gp")
        return cls(cfg.gp_weight)

    def penalty(self, p):
        assert p.critic is not None and p.real is not None
        gp = L.gradient_penalty(p.critic, p.real, p.fake)
        return gp, gp.detach()


class R1(Term):
    """R1 (Mescheder et al. 2018): gamma/2 E[||grad D(x)||^2] on real data, lazily every ``r1_every`` D steps."""

    name, phase, needs_real_grad = "r1", "D", True

    @classmethod
    def from_config(cls, cfg, modules):
        if cfg.r1_weight <= 0:
            return None
        _refuse_batch_norm(modules["D"], "objective.r1_weight > 0")
        return cls(cfg.r1_weight, cfg.r1_every)

    @property
    def scale(self) -> float:
        return 0.5 * self.weight * self.every  # gamma / 2, as in Mescheder et al.

    def penalty(self, p):
        assert p.real_logits is not None and p.real is not None
        r1 = L.r1_penalty(p.real_logits, p.real)
        return r1, r1.detach()


class ConditionKL(Term):
    """StackGAN's conditioning augmentation: the KL of the text G's condition distribution to N(0, I)."""

    name, phase, g_output = "condition_kl", "G", "with_kl"

    @classmethod
    def from_config(cls, cfg, modules):
        return cls(cfg.ca_kl_weight) if isinstance(modules["G"], TextConditional) and cfg.ca_kl_weight > 0 else None

    def penalty(self, p):
        assert p.g_output is not None
        return p.g_output, p.g_output.detach()


class Orthogonal(Term):
    """BigGAN's orthogonal regularisation of G's weights (Brock et al. 2019)."""

    name, phase = "ortho", "G"

    def __init__(self, weight: float, G: nn.Module) -> None:
        super().__init__(weight)
        self.G = G

    @classmethod
    def from_config(cls, cfg, modules):
        return cls(cfg.ortho_weight, modules["G"]) if cfg.ortho_weight > 0 else None

    def penalty(self, p):
        ortho = L.orthogonal_penalty(self.G)
        return ortho, ortho.detach()


class PathLength(Term):
    """StyleGAN2's path-length regularisation: (|J_w^T y| - a)^2 over the G step's own fakes, lazily every
    ``pl_every`` G steps; ``a`` is the moving mean of the path lengths (its state, checkpointed).

    The moving mean follows the mean over every process's fakes, so all processes of a torchrun keep the
    same ``a`` and rank 0's checkpoint resumes each of them exactly.
    """

    name, phase, g_output = "path_length", "G", "with_path_lengths"

    def __init__(self, weight: float, every: int, decay: float) -> None:
        super().__init__(weight, every)
        self.decay, self.mean = decay, 0.0

    @classmethod
    def from_config(cls, cfg, modules):
        if cfg.pl_weight <= 0:
            return None
        if not isinstance(modules["G"], StyleBased):
            raise ConfigError(
                f"objective.pl_weight > 0 regularises a style-based generator's mapping; this "
                f"{type(modules['G']).__name__} has none: use model.name=stylegan or set pl_weight=0"
            )
        return cls(cfg.pl_weight, cfg.pl_every, cfg.pl_decay)

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


MODE_SEEKING_EPS = 1e-5  # MSGAN's, in the reciprocal of the distance ratio


class ModeSeeking(Term):
    """MSGAN's mode-seeking term (Mao et al. 2019) for a G whose only noise is its dropout (pix2pix): G translates
    each source again under an independent dropout draw, and ``weight / (ratio + 1e-5)`` falls as the two
    translations spread, with ``ratio = mean|G(x; m1) - G(x; m2)| / d_masks``. The masks' own L1 distance is
    replaced by its expectation ``d_masks = 2p(1 - p)`` for drop rate p. Logged: the spread."""

    name, phase = "mode_spread", "G"

    def __init__(self, weight: float, mask_distance: float) -> None:
        super().__init__(weight)
        self.mask_distance = mask_distance

    @property
    def scale(self) -> float:
        return 1.0  # the weight divides by the ratio inside the penalty (MSGAN's reciprocal form)

    @classmethod
    def from_config(cls, cfg, modules):
        if cfg.mode_seeking_weight <= 0:
            return None
        dropout = getattr(modules["G"], "dropout", 0.0)
        if dropout == 0:
            raise ConfigError(
                "objective.mode_seeking_weight needs G's noise, its dropout, but model.g_dropout is 0; "
                "set model.g_dropout (0.5 in pix2pix) or objective.mode_seeking_weight=0"
            )
        return cls(cfg.mode_seeking_weight, 2 * dropout * (1 - dropout))

    def penalty(self, p):
        assert p.generator is not None
        spread = (p.fake - p.generator(p.batch["source"]).float()).abs().mean()  # a second, independent draw
        return self.weight / (spread / self.mask_distance + MODE_SEEKING_EPS), spread.detach()


TERMS: tuple[type[Term], ...] = (GradientPenalty, R1, ConditionKL, Orthogonal, PathLength)  # the GAN step's
PIX2PIX_TERMS: tuple[type[Term], ...] = (ModeSeeking,)


def build_terms(cfg: GANConfig, modules: dict[str, nn.Module], kinds: tuple[type[Term], ...] = TERMS) -> list[Term]:
    """The terms of ``kinds`` that ``cfg`` turns on, in that order; ConfigError for two that need G's forward
    at once."""
    terms = [term for cls in kinds if (term := cls.from_config(cfg, modules)) is not None]
    forward = [t.name for t in terms if t.g_output is not None]
    if len(forward) > 1:
        raise ConfigError(
            f"the regularisers {' and '.join(forward)} each need an extra output of G's forward; "
            "a generator gives one: turn one of them off"
        )
    return terms


def regularise(loss: Tensor, stats: dict[str, Tensor | float], due: list[Term], done: Pass) -> Tensor:
    """``loss`` plus each due term's scaled penalty, in order; each term's value logged under its name."""
    for term in due:
        penalty, stats[term.name] = term.penalty(done)
        loss = loss + term.scale * penalty
    return loss
