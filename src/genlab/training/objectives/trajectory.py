"""Social GAN's training (Gupta et al. 2018): D learns real paths from generated ones (observed steps with a
predicted future), G minimises the variety loss (the best of ``variety_k`` futures against the truth) plus
the non-saturating adversarial loss of one of them. ``adversarial_weight: 0`` drops D's phase: with
``model.noise_dim: 0`` and ``variety_k: 1`` that is the plain LSTM encoder-decoder trained by L2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ExampleRun, ObjectiveConfig, Range, TrainConfig, at_least
from genlab.data.base import Batch, Spec, trajectory_field
from genlab.images import Grid
from genlab.losses.gan import d_minimax, g_nonsaturating
from genlab.losses.trajectory import variety_loss
from genlab.models.protocols import eval_mode
from genlab.models.social_gan import TrajectoryDiscriminator, TrajectoryGenerator
from genlab.plotting import draw_scenes
from genlab.registry import register_objective
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step

SNAPSHOT_SCENES = 6
SNAPSHOT_SAMPLES = 20

CROWDS = {"name": "crowds", "n_train": 512, "n_test": 16, "agents": 3, "observed": 4, "predicted": 4}
TINY = {"name": "social_gan", "embed": 4, "hidden": 8, "pool": 4, "d_hidden": 8}


@dataclass
class SocialGANObjectiveConfig(ObjectiveConfig):
    name: str = "social_gan"
    family: ClassVar[str] = "trajectory"
    g_lr: float = 1e-3  # the paper's
    d_lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    d_steps: int = 2  # D updates per G update (the paper: 2)
    variety_k: int = 20  # futures drawn per scene for the variety loss (the paper: 20, "SGAN-20V")
    l2_weight: float = 1.0
    adversarial_weight: float = 1.0  # 0: no discriminator (the plain LSTM baseline)
    bounds: ClassVar[dict[str, Range]] = {
        "g_lr": POSITIVE,
        "d_lr": POSITIVE,
        "betas": PROBABILITY,
        "d_steps": at_least(1),
        "variety_k": at_least(1),
        "l2_weight": NON_NEGATIVE,
        "adversarial_weight": NON_NEGATIVE,
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun("social_gan", CROWDS, {**TINY, "noise_dim": 2}, {"name": "social_gan", "variety_k": 3}),
        ExampleRun(
            "trajectory_lstm",
            CROWDS,
            {**TINY, "noise_dim": 0},
            {"name": "social_gan", "variety_k": 1, "adversarial_weight": 0.0},
        ),
    )


class SocialGANStep(Step):
    def __init__(
        self, cfg: SocialGANObjectiveConfig, G: TrajectoryGenerator, D: TrajectoryDiscriminator, key: str, observed: int
    ) -> None:
        self.cfg, self.key, self.observed = cfg, key, observed
        self.modules = {"G": G, "D": D}
        self.optimizers = {
            "G": adam(G.parameters(), cfg.g_lr, cfg.betas),
            "D": adam(D.parameters(), cfg.d_lr, cfg.betas),
        }
        self.export = Export("G", "G")

    def phases(self) -> list[Phase]:
        g = Phase("G", "G", ("G",), self.g_loss, reuse_batch=self.cfg.adversarial_weight > 0)
        if self.cfg.adversarial_weight == 0:
            return [g]
        return [Phase("D", "D", ("D",), self.d_loss, repeats=self.cfg.d_steps), g]

    def split(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        paths = batch[self.key]
        return paths[:, :, : self.observed], paths[:, :, self.observed :]

    def d_loss(self, batch: Batch) -> LossOutput:
        observed, _ = self.split(batch)
        with torch.no_grad():
            fake = torch.cat([observed, self.nets["G"](observed)], dim=2)
        real_logits, fake_logits = self.nets["D"](batch[self.key]), self.nets["D"](fake)
        return LossOutput(
            d_minimax(real_logits, fake_logits),
            {"D(x)": torch.sigmoid(real_logits).mean().detach(), "D(G(z))": torch.sigmoid(fake_logits).mean().detach()},
        )

    def g_loss(self, batch: Batch) -> LossOutput:
        observed, truth = self.split(batch)
        k, n = self.cfg.variety_k, observed.shape[0]
        futures = self.nets["G"](observed.repeat(k, 1, 1, 1)).view(k, n, *truth.shape[1:])  # one forward for all k
        variety = variety_loss(futures, truth).mean()
        loss = self.cfg.l2_weight * variety
        stats: dict[str, torch.Tensor | float] = {"variety_l2": variety.detach()}
        if self.cfg.adversarial_weight > 0:
            adversarial = g_nonsaturating(self.nets["D"](torch.cat([observed, futures[0]], dim=2)))
            loss = loss + self.cfg.adversarial_weight * adversarial
            stats["adversarial"] = adversarial.detach()
        stats["ade_best"] = (futures.detach() - truth).norm(dim=-1).mean(dim=(2, 3)).min(dim=0).values.mean()
        return LossOutput(loss, stats)

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """A few fixed scenes: observed paths, the true futures and 20 predicted ones."""
        observed, truth = self.split(fixed.head(SNAPSHOT_SCENES))
        with eval_mode(self.modules["G"]) as G:
            assert isinstance(G, TrajectoryGenerator)
            predictions = G.predict(observed, SNAPSHOT_SAMPLES, torch.Generator().manual_seed(seed))
        figure = draw_scenes(observed.cpu().numpy(), truth.cpu().numpy(), predictions.cpu().numpy())
        image = torch.from_numpy(np.array(figure)).permute(2, 0, 1)[None].float() / 127.5 - 1
        return {"predictions": Grid(image, 1)}


@register_objective("social_gan", SocialGANObjectiveConfig)
def build_social_gan_step(
    cfg: SocialGANObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig
) -> SocialGANStep:
    key, field = trajectory_field(spec, "social_gan")
    return SocialGANStep(cfg, modules["G"], modules["D"], key, field.observed)
