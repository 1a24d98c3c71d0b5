"""The VAE family's step: one phase that maximises the (beta-weighted) ELBO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from genlab.config import ObjectiveConfig, TrainConfig
from genlab.data.base import TensorDataset
from genlab.latent.traverse import traversal_grid
from genlab.losses.vae import decoder_log_likelihood, elbo, kl_divergence
from genlab.models.vae import VAE
from genlab.registry import register_objective
from genlab.training.optim import adam
from genlab.training.step import Batch, Grid, LossOutput, Phase, Step


@dataclass
class VAEObjectiveConfig(ObjectiveConfig):
    name: str = "vae"
    family: ClassVar[str] = "vae"
    beta: float = 1.0  # weight of the KL term; 1 is the ELBO, > 1 is beta-VAE
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0


class VAEStep(Step):
    export_name = "vae"

    def __init__(self, cfg: VAEObjectiveConfig, vae: VAE) -> None:
        self.cfg = cfg
        self.modules = {"vae": vae}
        self.optimizers = {
            "vae": adam(vae.parameters(), cfg.lr, cfg.betas, cfg.weight_decay)
        }

    def phases(self) -> list[Phase]:
        return [Phase("vae", "vae", self.loss)]

    def loss(self, batch: Batch) -> LossOutput:
        vae: VAE = self.modules["vae"]
        out = self.nets["vae"](batch.x)
        log_px = decoder_log_likelihood(vae.likelihood, out.params.float(), batch.x, vae.log_sigma)
        kl = kl_divergence(out.mu.float(), out.logvar.float())
        per_example = elbo(log_px, kl, self.cfg.beta)
        return LossOutput(
            loss=-per_example.mean(),
            stats={"elbo": elbo(log_px, kl).mean().detach(), "recon_nll": -log_px.mean().detach(), "kl": kl.mean().detach()},
        )

    @torch.no_grad()
    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        vae: VAE = self.modules["vae"]
        was_training = vae.training
        vae.eval()
        generator = torch.Generator().manual_seed(seed)
        x = fixed.x[:32]
        pairs = torch.stack([x, vae.reconstruct(x)], dim=1).flatten(0, 1)  # original | reconstruction
        grids = {
            "samples": Grid(vae.sample(64, generator=generator), 8),
            "reconstructions": Grid(pairs, 8),
            "traversal": traversal_grid(vae, x[:1], steps=9),
        }
        vae.train(was_training)
        return grids


@register_objective("vae", VAEObjectiveConfig)
def build_vae_step(
    cfg: VAEObjectiveConfig, modules: dict[str, nn.Module], data: TensorDataset, train: TrainConfig
) -> VAEStep:
    return VAEStep(cfg, modules["vae"])
