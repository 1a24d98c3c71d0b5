"""Regularisers as terms (training/regularisers): which the config's list turns on, in what order, how often
and how strongly each joins its phase's loss, what each refuses, what is implied, and the old flat keys."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from genlab.config import RegulariserConfig, config_from_dict, load_config
from genlab.data.base import Image
from genlab.errors import ConfigError
from genlab.models import build_modules
from genlab.registry import MODELS, REGULARISERS, Entry
from genlab.training.objectives.gan import GANObjectiveConfig
from genlab.training.objectives.pix2pix import Pix2PixObjectiveConfig
from genlab.training.regularisers import Pass, Regularisers, Term, build_terms, regularise, terms_of
from genlab.training.regularisers.condition_kl import ConditionKL
from genlab.training.regularisers.gradient_penalty import GradientPenalty
from genlab.training.regularisers.mode_seeking import ModeSeeking
from genlab.training.regularisers.orthogonal import Orthogonal
from genlab.training.regularisers.path_length import PathLength, PathLengthConfig
from genlab.training.regularisers.r1 import R1


class PlainG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(2, 2)


class NormedD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))


def objective(**keys) -> GANObjectiveConfig:
    """A GAN objective section loaded as from YAML (the list's entries are mappings)."""
    return config_from_dict({
        "name": "t", "data": {"name": "sprites"}, "model": {"name": "dcgan"}, "objective": {"name": "gan", **keys},
    }).objective


def terms_for(D: nn.Module | None = None, **keys) -> list[Term]:
    cfg = objective(**keys)
    return build_terms(cfg, cfg.regularisers, {"G": PlainG(), "D": D or nn.Linear(2, 1)})


def test_the_list_turns_terms_on_in_its_order_each_in_its_phase():
    assert terms_for() == []
    terms = terms_for(regularisers=[{"name": "ortho"}, {"name": "r1", "weight": 2.0, "every": 4}])
    assert [type(t) for t in terms] == [Orthogonal, R1] and [t.phase for t in terms] == ["G", "D"]
    assert terms[0].weight == 1e-4  # BigGAN's, the term's default
    assert terms_for(regularisers=[{"name": "r1", "weight": 0.0}]) == []  # weight 0: off


def test_a_lazy_term_runs_every_kth_step_weighted_by_k():
    (r1,) = terms_for(regularisers=[{"name": "r1", "weight": 2.0, "every": 4}])
    assert [r1.due(step) for step in range(6)] == [True, False, False, False, True, False]
    assert r1.scale == 0.5 * 2.0 * 4  # gamma / 2, times the interval


def test_the_loss_implies_its_term_which_the_list_can_reweigh_and_keeps_first():
    (gp,) = terms_for(loss="wgan_gp")
    assert isinstance(gp, GradientPenalty) and gp.scale == 10.0 and all(gp.due(step) for step in range(3))
    gp, r1 = terms_for(loss="wgan_gp", regularisers=[{"name": "r1"}])  # implied terms first, as before the list
    assert isinstance(gp, GradientPenalty) and isinstance(r1, R1)
    (gp,) = terms_for(loss="wgan_gp", regularisers=[{"name": "gp", "weight": 5.0}])
    assert gp.weight == 5.0
    assert terms_for(loss="wgan_gp", regularisers=[{"name": "gp", "weight": 0.0}]) == []


def test_each_due_term_adds_its_scaled_penalty_and_logs_its_value():
    class Fixed(Term):
        stat, phase = "fixed", "G"

        def penalty(self, p: Pass) -> tuple[Tensor, float]:
            return torch.tensor(3.0), 7.0

    stats: dict = {}
    fixed = Fixed(RegulariserConfig("fixed", weight=0.5, every=2), {}, objective())
    loss = regularise(torch.tensor(1.0), stats, [fixed], Pass({}, torch.zeros(1), ()))
    assert loss.item() == 1.0 + 0.5 * 2 * 3.0 and stats == {"fixed": 7.0}
    # A step's Regularisers count its phases' steps: the lazy term joins steps 0 and 2, and that count resumes.
    regs = Regularisers([fixed])
    joined = [regs.add("G", torch.tensor(0.0), {}, Pass({}, torch.zeros(1), ())).item() for _ in range(3)]
    assert joined == [3.0, 0.0, 3.0] and regs.state_dict() == {"d_updates": 0, "g_updates": 3}
    again = Regularisers([fixed])
    again.load_state_dict(regs.state_dict())
    assert [t.stat for t in again.due("G")] == []  # step 3 of an every-2 term


def test_a_new_term_is_one_registration_and_the_objectives_config_does_not_change():
    @dataclass
    class ClipConfig(RegulariserConfig):
        name: str = "clip_norm"
        ceiling: float = 1.0

    class Clip(Term):
        stat, phase = "clip_norm", "G"

        def __init__(self, cfg, modules, objective):
            super().__init__(cfg, modules, objective)
            self.ceiling = cfg.ceiling

        def penalty(self, p):
            return p.fake.norm().clamp_min(self.ceiling), 0.0

    REGULARISERS.add("clip_norm", Entry("clip_norm", ClipConfig, Clip))
    try:
        (term,) = terms_for(regularisers=[{"name": "clip_norm", "weight": 3.0, "ceiling": 2.0}])
        assert isinstance(term, Clip) and term.ceiling == 2.0 and term.scale == 3.0
        with pytest.raises(ConfigError, match="ceiling"):
            objective(regularisers=[{"name": "clip_norm", "ceil": 2.0}])
    finally:
        del REGULARISERS._entries["clip_norm"]


def test_terms_refuse_what_they_cannot_regularise():
    with pytest.raises(ConfigError, match="batch norm in D"):
        terms_for(NormedD(), regularisers=[{"name": "r1"}])
    with pytest.raises(ConfigError, match="style-based generator"):
        terms_for(regularisers=[{"name": "path_length"}])
    with pytest.raises(ConfigError, match="conditioning augmentation"):
        terms_for(regularisers=[{"name": "condition_kl"}])  # not a text G
    assert not ConditionKL.implied(objective(), {"G": PlainG()})
    with pytest.raises(ConfigError, match=r"pix2pix objective's steps, not gan's; its terms: .*r1"):
        terms_for(regularisers=[{"name": "mode_seeking"}])
    with pytest.raises(ConfigError, match="r1 twice"):
        terms_for(regularisers=[{"name": "r1"}, {"name": "r1", "every": 2}])
    with pytest.raises(ConfigError, match=r"regularisers.*'r2'.*Did you mean 'r1'"):
        objective(regularisers=[{"name": "r2"}])
    with pytest.raises(ConfigError, match="every must be >= 1"):
        objective(regularisers=[{"name": "r1", "every": 0}])
    assert "mode_seeking" in terms_of("pix2pix") and "mode_seeking" not in terms_of("gan")


def test_the_path_length_target_is_state_that_resumes():
    spec = {"image": Image(3, 32, 32)}
    G = build_modules(MODELS.get("stylegan").config_cls(name="stylegan", latent_dim=8, w_dim=8, mapping_layers=2,
                                                        g_channels=4, d_channels=4, max_channels=16), spec)["G"]

    def term() -> PathLength:
        cfg = objective(regularisers=[{"name": "path_length", "decay": 0.5}])
        (built,) = build_terms(cfg, cfg.regularisers, {"G": G, "D": nn.Linear(2, 1)})
        assert isinstance(built, PathLength) and built.scale == 2.0 * 4  # the paper's weight, every 4th G step
        return built

    first = term()
    penalty, mean = first.penalty(Pass({}, torch.zeros(1), (), g_output=torch.tensor([1.0, 3.0])))
    assert mean == 2.0 and first.mean == 1.0 and penalty.item() == pytest.approx(((0.0) ** 2 + 2.0**2) / 2)
    again = term()
    again.load_state_dict(first.state_dict())
    assert again.mean == first.mean
    again.load_state_dict({})  # a checkpoint from before the term: no target yet
    assert again.mean == 0.0


def test_mode_seeking_is_a_term_of_pix2pixs_g_that_needs_its_dropout():
    class Dropping(nn.Module):
        dropout = 0.5

    cfg = Pix2PixObjectiveConfig.upgrade({"name": "pix2pix", "mode_seeking_weight": 2.0})
    assert cfg["regularisers"] == [{"name": "mode_seeking", "weight": 2.0}]
    p2p = config_from_dict({"name": "t", "data": {"name": "sprites"}, "model": {"name": "pix2pix"},
                            "objective": cfg}).objective
    (term,) = build_terms(p2p, p2p.regularisers, {"G": Dropping()})
    assert isinstance(term, ModeSeeking) and term.phase == "G" and term.scale == 1.0 and term.mask_distance == 0.5
    fake = torch.zeros(2, 1, 4, 4)
    penalty, spread = term.penalty(Pass({"source": fake}, fake, (), generator=lambda s: s + 0.25))
    assert spread.item() == 0.25 and penalty.item() == pytest.approx(2.0 / (0.25 / 0.5 + 1e-5))
    Dropping.dropout = 0.0
    with pytest.raises(ConfigError, match="needs G's noise, its dropout"):
        build_terms(p2p, p2p.regularisers, {"G": Dropping()})


def test_configs_and_runs_with_the_old_flat_keys_load_as_the_same_terms():
    old = {"loss": "nonsaturating", "gp_weight": 10.0, "r1_weight": 1.0, "r1_every": 4, "pl_weight": 0.0,
           "pl_every": 4, "pl_decay": 0.01, "ortho_weight": 0.0, "ca_kl_weight": 1.0}  # a run folder's config.yaml
    assert [(e.name, e.weight, e.every) for e in objective(**old).regularisers] == [("r1", 1.0, 4)]
    # gp only under wgan_gp and at another weight than the implied 10; the KL at another than 1 (0 turns it off).
    wgan = objective(**{**old, "loss": "wgan_gp", "gp_weight": 5.0, "ca_kl_weight": 0.0, "r1_weight": 0.0})
    assert [(e.name, e.weight) for e in wgan.regularisers] == [("gp", 5.0), ("condition_kl", 0.0)]
    style = objective(pl_weight=2.0, pl_every=8, pl_decay=0.02)
    assert style.regularisers == [PathLengthConfig(weight=2.0, every=8, decay=0.02)]
    with pytest.raises(ConfigError, match=r"r1 is set both .* objective.regularisers.0.weight=0"):
        load_config("configs/fast_mnist_gan.yaml", ["objective.r1_weight=0"])
    assert load_config("configs/fast_mnist_gan.yaml", ["objective.regularisers.0.weight=0"]).objective.regularisers[
        0].weight == 0.0
