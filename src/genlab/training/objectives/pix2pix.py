"""pix2pix's step (Isola et al., CVPR 2017): a conditional GAN on pairs plus lambda * L1 to the target.

Phases per iteration: ``D`` on a fresh batch of pairs, real (x, y) against fake (x, G(x))
with G's output detached, its loss halved as in the paper; then ``G`` on the same pairs
(``reuse_batch``): fool D on (x, G(x)) plus ``l1_weight`` * |y - G(x)|_1. Adam with
lr 2e-4 and betas (0.5, 0.999) for both, as in the paper.

``loss`` gives the paper's ablations: ``cgan_l1`` (the method), ``cgan`` (no L1), and
``l1`` or ``l2`` alone, which need no discriminator: G is then the step's only module, with
the only optimiser and the only phase. The model builder still returns a D (a model does
not know its objective); the loop builds it from the seed and the step drops it, so it is
neither trained nor checkpointed.

``regularisers: [{name: mode_seeking}]`` adds MSGAN's mode-seeking term (Mao et al., CVPR 2019) to G's
loss, against pix2pix's near-determinism: G translates each source twice, under two
independent dropout draws (pix2pix's only noise, standing in for MSGAN's z1 and z2), and
minimises ``weight / (ratio + 1e-5)`` with ``ratio = mean|G(x; m1) - G(x; m2)| /
d_masks`` (the reciprocal form of the authors' code). The masks' own L1 distance is
replaced by its expectation ``d_masks = 2p(1 - p)`` for drop rate p (a batch draws tens
of thousands of independent mask entries, so the realised distance stays within about a
percent of it): the denominator is a constant that only rescales the weight. The GAN and L1 terms see the
first translation only.

Differences from the authors' code: G's output is computed again in the G phase (the loop
freezes G while D trains, so D's fakes carry no graph to reuse), so the two phases see
different dropout masks and G's batch-norm statistics see each batch twice; ``lsgan``'s G
term is losses.gan's 1/2 E[(D - 1)^2], half the code's, i.e. twice the effective lambda.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import (
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    ExampleRun,
    ObjectiveConfig,
    Range,
    RegulariserConfig,
    TrainConfig,
)
from genlab.data.base import Batch, Spec
from genlab.images import Grid
from genlab.models.pix2pix import UNetGenerator
from genlab.models.protocols import Translator
from genlab.registry import register_objective
from genlab.training.objectives.gan import LOSSES, PROBABILITY_LOSSES
from genlab.training.objectives.snapshots import side_by_side
from genlab.training.optim import adam
from genlab.training.regularisers import Pass, Regularisers, build_terms, upgrade_flat_keys
from genlab.training.step import Export, LossOutput, Phase, Step

SNAPSHOT_ROWS = 8  # pairs of the fixed batch shown as source | output | target


@dataclass
class Pix2PixObjectiveConfig(ObjectiveConfig):
    name: str = "pix2pix"
    family: ClassVar[str] = "pix2pix"
    loss: Literal["cgan_l1", "cgan", "l1", "l2"] = "cgan_l1"
    l1_weight: float = 100.0  # lambda of cgan_l1 (unused by the others: one term alone needs no weight under Adam)
    gan_loss: Literal["nonsaturating", "lsgan"] = "nonsaturating"  # nonsaturating: the paper's BCE
    lr_d: float = 2e-4
    lr_g: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's
    regularisers: list[RegulariserConfig] = field(
        default_factory=list
    )  # G's terms: mode_seeking (training/regularisers)
    bounds: ClassVar[dict[str, Range]] = {
        "l1_weight": NON_NEGATIVE,
        "lr_d": POSITIVE,
        "lr_g": POSITIVE,
        "betas": PROBABILITY,
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        # Dropout is G's noise (global RNG while training): resume must restore it.
        ExampleRun(
            "pix2pix",
            {
                "name": "pairs",
                "kind": "edges",
                "base": {"name": "color_sprites", "image_size": 32, "n_train": 512, "n_test": 64},
            },
            {"name": "pix2pix", "g_channels": 4, "d_channels": 4},
            {"name": "pix2pix"},
            slow=True,
        ),
    )

    @classmethod
    def upgrade(cls, raw: dict) -> dict:
        """Runs and configs from before the terms: ``mode_seeking_weight`` becomes its entry when above 0."""
        return upgrade_flat_keys(raw, {"mode_seeking_weight": ("mode_seeking", "weight")}, lambda e: e["weight"] > 0)

    @property
    def adversarial(self) -> bool:
        return self.loss in ("cgan_l1", "cgan")


class Pix2PixStep(Step):
    def __init__(self, cfg: Pix2PixObjectiveConfig, G: nn.Module, D: nn.Module) -> None:
        self.cfg = cfg
        self.d_loss_fn, self.g_loss_fn = LOSSES[cfg.gan_loss]
        self.modules = {"G": G} | ({"D": D} if cfg.adversarial else {})
        self.optimizers = {"G": adam(G.parameters(), cfg.lr_g, cfg.betas)}
        if cfg.adversarial:
            self.optimizers["D"] = adam(D.parameters(), cfg.lr_d, cfg.betas)
        self.export = Export("G", "G")
        assert isinstance(G, UNetGenerator)  # the generator with dropout masks
        self.regularisers = Regularisers(build_terms(cfg, cfg.regularisers, {"G": G}))  # G's (mode seeking)

    def phases(self) -> list[Phase]:
        if not self.cfg.adversarial:
            return [Phase("G", "G", ("G",), self.g_loss)]
        return [Phase("D", "D", ("D",), self.d_loss), Phase("G", "G", ("G",), self.g_loss, reuse_batch=True)]

    def _score(self, logits: Tensor) -> Tensor:
        """Mean D output as logged: a probability for the BCE loss, the raw score for lsgan."""
        return (logits.sigmoid() if self.cfg.gan_loss in PROBABILITY_LOSSES else logits).mean().detach()

    def d_loss(self, batch: Batch) -> LossOutput:
        source, target = batch["source"], batch["target"]
        with torch.no_grad():  # D's step never reaches G
            fake = self.nets["G"](source)
        D = self.nets["D"]
        real_logits, fake_logits = D(source, target).float(), D(source, fake).float()
        # Halved as in the paper, "to slow down the rate at which D learns relative to G"
        # (under Adam a constant factor changes little but the logged loss).
        loss = 0.5 * self.d_loss_fn(real_logits, fake_logits)
        return LossOutput(loss, {"D(x)": self._score(real_logits), "D(G(x))": self._score(fake_logits)})

    def g_loss(self, batch: Batch) -> LossOutput:
        source, target = batch["source"], batch["target"]
        fake = self.nets["G"](source).float()
        l1 = F.l1_loss(fake, target)
        stats: dict[str, Tensor | float] = {"L1": l1.detach()}
        if self.cfg.loss == "l1":
            loss = l1
        elif self.cfg.loss == "l2":
            loss = F.mse_loss(fake, target)
            stats["L2"] = loss.detach()
        else:
            gan = self.g_loss_fn(self.nets["D"](source, fake).float())
            stats["gan"] = gan.detach()
            loss = gan + self.cfg.l1_weight * l1 if self.cfg.loss == "cgan_l1" else gan
        loss = self.regularisers.add("G", loss, stats, Pass(batch, fake, (), generator=self.nets["G"]))
        return LossOutput(loss, stats)

    def state_dict(self) -> dict:
        return self.regularisers.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.regularisers.load_state_dict(state)

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Rows of source | G's translation | target for the first pairs of the fixed batch,
        with dropout masks fixed by ``seed``."""
        source, target = fixed["source"][:SNAPSHOT_ROWS], fixed["target"][:SNAPSHOT_ROWS]
        G = self.modules["G"]
        assert isinstance(G, Translator)
        output = G.translate(source, generator=torch.Generator().manual_seed(seed))
        return {"translations": side_by_side(source, output, target)}


@register_objective("pix2pix", Pix2PixObjectiveConfig)
def build_pix2pix_step(
    cfg: Pix2PixObjectiveConfig, modules: dict[str, nn.Module], spec: Spec, train: TrainConfig
) -> Pix2PixStep:
    return Pix2PixStep(cfg, modules["G"], modules["D"])
