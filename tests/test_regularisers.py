"""GAN regularisers as terms (training/objectives/regularisers.py): which the config turns on, in what
order, how often and how strongly each joins its phase's loss, and what each refuses."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.training.objectives.gan import GANObjectiveConfig
from genlab.training.objectives.regularisers import (TERMS, ConditionKL, GradientPenalty, Orthogonal, Pass, PathLength,
                                                     R1, Term, build_terms, regularise)


class PlainG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 2)


class NormedD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def terms_for(**cfg) -> list[Term]:
    return build_terms(GANObjectiveConfig(**cfg), {"G": PlainG(), "D": nn.Linear(2, 1)})


def test_the_config_turns_terms_on_in_one_order_each_in_its_phase():
    assert terms_for() == []
    terms = terms_for(loss="wgan_gp", r1_weight=2.0, r1_every=4, ortho_weight=1e-4)
    assert [type(t) for t in terms] == [GradientPenalty, R1, Orthogonal]
    assert [t.phase for t in terms] == ["D", "D", "G"]
    assert [type(t) for t in terms] == [c for c in TERMS if c in {type(t) for t in terms}]  # TERMS order


def test_a_lazy_term_runs_every_kth_step_weighted_by_k():
    r1 = terms_for(r1_weight=2.0, r1_every=4)[0]
    assert [r1.due(step) for step in range(6)] == [True, False, False, False, True, False]
    assert r1.scale == 0.5 * 2.0 * 4  # gamma / 2, times the interval
    gp = terms_for(loss="wgan_gp", gp_weight=10.0)[0]
    assert all(gp.due(step) for step in range(3)) and gp.scale == 10.0


def test_each_due_term_adds_its_scaled_penalty_and_logs_its_value():
    class Fixed(Term):
        name, phase = "fixed", "G"

        @classmethod
        def from_config(cls, cfg, modules):
            return None

        def penalty(self, p: Pass) -> tuple[Tensor, float]:
            return torch.tensor(3.0), 7.0

    stats: dict = {}
    loss = regularise(torch.tensor(1.0), stats, [Fixed(0.5, every=2)], Pass({}, torch.zeros(1), ()))
    assert loss.item() == 1.0 + 0.5 * 2 * 3.0 and stats == {"fixed": 7.0}


def test_terms_refuse_what_they_cannot_regularise():
    with pytest.raises(ConfigError, match="batch norm in D"):
        build_terms(GANObjectiveConfig(r1_weight=1.0), {"G": PlainG(), "D": NormedD()})
    with pytest.raises(ConfigError, match="style-based generator"):
        terms_for(pl_weight=2.0)
    assert ConditionKL.from_config(GANObjectiveConfig(), {"G": PlainG()}) is None  # not a text G


def test_the_path_length_target_is_state_that_resumes():
    term = PathLength(2.0, 4, 0.5)
    penalty, mean = term.penalty(Pass({}, torch.zeros(1), (), g_output=torch.tensor([1.0, 3.0])))
    assert mean == 2.0 and term.mean == 1.0 and penalty.item() == pytest.approx(((0.0) ** 2 + 2.0**2) / 2)
    again = PathLength(2.0, 4, 0.5)
    again.load_state_dict(term.state_dict())
    assert again.mean == term.mean
    again.load_state_dict({})  # a checkpoint from before the term: no target yet
    assert again.mean == 0.0


def test_mode_seeking_is_a_term_of_pix2pixs_g_that_needs_its_dropout():
    from genlab.training.objectives.pix2pix import Pix2PixObjectiveConfig
    from genlab.training.objectives.regularisers import PIX2PIX_TERMS, ModeSeeking

    class Dropping(nn.Module):
        dropout = 0.5

    (term,) = build_terms(Pix2PixObjectiveConfig(mode_seeking_weight=2.0), {"G": Dropping()}, PIX2PIX_TERMS)
    assert isinstance(term, ModeSeeking) and term.phase == "G" and term.scale == 1.0 and term.mask_distance == 0.5
    fake = torch.zeros(2, 1, 4, 4)
    penalty, spread = term.penalty(Pass({"source": fake}, fake, (), generator=lambda s: s + 0.25))
    assert spread.item() == 0.25 and penalty.item() == pytest.approx(2.0 / (0.25 / 0.5 + 1e-5))
    Dropping.dropout = 0.0
    with pytest.raises(ConfigError, match="needs G's noise, its dropout"):
        build_terms(Pix2PixObjectiveConfig(mode_seeking_weight=2.0), {"G": Dropping()}, PIX2PIX_TERMS)
