"""Regularisers as terms: each one object with its weight, its interval and the phase it joins.

An objective that takes terms (the GAN step, pix2pix's) lists them in its config::

    objective:
      name: gan
      regularisers:
        - {name: r1, weight: 0.1, every: 16}
        - {name: path_length, weight: 2, every: 4}

A term reads what its phase's loss computed (:class:`Pass`) and returns a penalty; the step adds
``scale * penalty`` to the phase's loss and logs the term's value under its ``stat``. Lazy
regularisation (Karras et al. 2020, stylegan2-ada's loss.py): a term with ``every = k`` runs on
every k-th step of its phase, weighted by k, so that its average pull stays the same.

A new regulariser is one module in this package: its config (a :class:`RegulariserConfig`), its
:class:`Term` (which refuses, when built, what it cannot regularise) and one
``@register_regulariser`` line. The steps' losses never name a term, and neither does their config.
A list is also the order its terms join their phase's loss in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from genlab.config import ObjectiveConfig, RegulariserConfig
from genlab.data.base import Batch
from genlab.errors import ConfigError
from genlab.registry import REGULARISERS, Entry


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
    """One regulariser of one phase ("D" or "G"), run on every ``every``-th step of it.

    Built as ``Term(cfg, modules, objective)`` from its config entry, the step's modules by name and
    the objective's config; the constructor raises ConfigError for modules it cannot regularise.
    """

    stat: ClassVar[str]  # its key in the logged stats
    phase: ClassVar[Literal["D", "G"]]
    objectives: ClassVar[tuple[str, ...]] = ("gan",)  # the objectives whose steps fill the Pass it reads
    needs_real_grad: ClassVar[bool] = False  # D's step must make the real images require grad (R1)
    # A keyword of G's forward that makes it return (images, this term's input) from inside the forward, so that
    # the computation runs through G's DDP wrapper (the path lengths, the conditioning KL); None: no such input.
    g_output: ClassVar[str | None] = None

    def __init__(self, cfg: RegulariserConfig, modules: dict[str, nn.Module], objective: ObjectiveConfig) -> None:
        self.weight, self.every = cfg.weight, cfg.every

    @classmethod
    def implied(cls, objective: ObjectiveConfig, modules: dict[str, nn.Module]) -> bool:
        """Whether the objective or a model carries this term unless the list names it (at its default weight):
        WGAN-GP's loss its gradient penalty, StackGAN's conditioning augmentation its KL."""
        return False

    @property
    def coefficient(self) -> float:
        """The penalty's factor on each step that runs it (the weight; R1's gamma / 2)."""
        return self.weight

    @property
    def scale(self) -> float:
        """The factor of the penalty in the phase's loss: the coefficient, times the interval of a lazy term."""
        return self.coefficient * self.every

    def due(self, steps: int) -> bool:
        """Whether the phase's step after ``steps`` earlier ones runs this term."""
        return steps % self.every == 0

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


def refuse_batch_norm(D: nn.Module, term: str) -> None:
    if has_batch_norm(D):
        raise ConfigError(
            f"gradient penalties ({term}) are per-example and invalid under batch norm in D; "
            "set model.d_norm=none or model.spectral_norm=true"
        )


def build_terms(
    objective: ObjectiveConfig, entries: Sequence[RegulariserConfig], modules: dict[str, nn.Module]
) -> list[Term]:
    """The terms of ``entries`` (an objective's ``regularisers`` list) that have a weight, after those the
    objective or its models imply and the list does not name, in that order; ConfigError for a term that
    ``objective`` cannot run, one named twice, or two that need G's forward at once."""
    named = [entry.name for entry in entries]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"objective.regularisers names {', '.join(twice)} twice: give each term one entry")
    implied = [
        entry.config_cls(name=entry.name)
        for entry in REGULARISERS.entries()
        if entry.name not in named and _term(entry).implied(objective, modules)
    ]
    terms = []
    for cfg in (*implied, *entries):
        cls = _term(REGULARISERS.get(cfg.name))
        if objective.name not in cls.objectives:
            raise ConfigError(
                f"objective.regularisers: {cfg.name} regularises the {' or '.join(cls.objectives)} objective's "
                f"steps, not {objective.name}'s; its terms: {', '.join(terms_of(objective.name))}"
            )
        if cfg.weight > 0:
            terms.append(cls(cfg, modules, objective))
    forward = [t.stat for t in terms if t.g_output is not None]
    if len(forward) > 1:
        raise ConfigError(
            f"the regularisers {' and '.join(forward)} each need an extra output of G's forward; "
            "a generator gives one: turn one of them off"
        )
    return terms


def terms_of(objective: str) -> list[str]:
    """The registered terms that ``objective``'s steps can run."""
    return [entry.name for entry in REGULARISERS.entries() if objective in _term(entry).objectives]


def _term(entry: Entry) -> type[Term]:
    cls = entry.builder
    assert isinstance(cls, type) and issubclass(cls, Term)
    return cls


def regularise(loss: Tensor, stats: dict[str, Tensor | float], due: list[Term], done: Pass) -> Tensor:
    """``loss`` plus each due term's scaled penalty, in order; each term's value logged under its stat."""
    for term in due:
        penalty, stats[term.stat] = term.penalty(done)
        loss = loss + term.scale * penalty
    return loss


class Regularisers:
    """A step's terms by phase and the count of each phase's steps, which says which lazy terms are due.

    Its state (the counts, and each term's own) is part of its step's, so a resumed run regularises on
    the same steps.
    """

    def __init__(self, terms: list[Term]) -> None:
        self.terms = {phase: [t for t in terms if t.phase == phase] for phase in ("D", "G")}
        self.steps = {"D": 0, "G": 0}

    def due(self, phase: Literal["D", "G"]) -> list[Term]:
        """The terms of ``phase`` that its next step runs."""
        return [t for t in self.terms[phase] if t.due(self.steps[phase])]

    def add(self, phase: Literal["D", "G"], loss: Tensor, stats: dict[str, Tensor | float], done: Pass) -> Tensor:
        """``loss`` of one step of ``phase`` with its due terms' penalties (:func:`regularise`); counts the step."""
        loss = regularise(loss, stats, self.due(phase), done)
        self.steps[phase] += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        terms = {key: value for phase in self.terms.values() for t in phase for key, value in t.state_dict().items()}
        return {"d_updates": self.steps["D"], "g_updates": self.steps["G"], **terms}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Runs from before the lazy regularisers counted nothing: every step regularised, which 0 reproduces.
        self.steps = {"D": int(state.get("d_updates", 0)), "G": int(state.get("g_updates", 0))}
        for phase in self.terms.values():
            for term in phase:
                term.load_state_dict(state)


def upgrade_flat_keys(
    raw: dict[str, Any], flat: dict[str, tuple[str, str]], keep: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """An objective section written before its regularisers were terms, with its flat keys (``r1_weight: 1``)
    moved into entries of ``raw["regularisers"]`` (``{name: r1, weight: 1}``) in the order of ``flat`` (key ->
    (term, the term's key)), each entry that ``keep`` accepts; ConfigError for a term set both ways."""
    entries: dict[str, dict[str, Any]] = {}
    for key, (term, field) in flat.items():
        if key in raw:
            entries.setdefault(term, {"name": term})[field] = raw.pop(key)
    listed = raw.setdefault("regularisers", [])
    if not isinstance(listed, list):
        return raw  # loading names the wrong type
    both = sorted(set(entries) & {e.get("name") for e in listed if isinstance(e, dict)})
    if both:
        raise ConfigError(
            f"objective: {', '.join(both)} is set both by its entry in objective.regularisers and by a flat key "
            f"of older genlab versions ({', '.join(key for key, (term, _) in flat.items() if term in both)}): "
            "set the entry, e.g. objective.regularisers.0.weight=0"
        )
    listed.extend(entry for entry in entries.values() if keep(entry))
    return raw
