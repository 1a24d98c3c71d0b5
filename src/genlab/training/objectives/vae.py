"""The VAE family's step: one phase that maximises the (beta-weighted) ELBO, conditioned
on the class label for a CVAE; a single network trained by Adam like the classifier's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from genlab.config import EXAMPLE_FILES, NON_NEGATIVE, ExampleRun, Range, TrainConfig
from genlab.data.base import Batch, Spec, sample_field
from genlab.gaussians import kl_divergence
from genlab.images import Grid
from genlab.losses.vae import decoder_log_likelihood, elbo
from genlab.models.protocols import eval_mode, is_conditional
from genlab.models.vae import VAE
from genlab.registry import register_objective
from genlab.training.objectives.single import AdamObjectiveConfig, SingleNetworkStep
from genlab.training.objectives.snapshots import class_grid, traversal_grid
from genlab.training.step import LossOutput


@dataclass
class VAEObjectiveConfig(AdamObjectiveConfig):
    name: str = "vae"
    family: ClassVar[str] = "vae"
    beta: float = 1.0  # weight of the KL term; 1 is the ELBO, > 1 is beta-VAE
    bounds: ClassVar[dict[str, Range]] = {**AdamObjectiveConfig.bounds, "beta": NON_NEGATIVE}
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "vae",
            {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
            {"name": "conv_vae", "latent_dim": 4, "channels": 8},
            {"name": "vae", "beta": 4.0},
        ),
        ExampleRun(
            "cvae",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512},
            {"name": "vae_mlp", "hidden": 64, "latent_dim": 4, "conditional": True},
            {"name": "vae"},
        ),
    )


class VAEStep(SingleNetworkStep):
    def __init__(self, cfg: VAEObjectiveConfig, vae: VAE, image_key: str) -> None:
        super().__init__("vae", vae, cfg)
        self.cfg, self.image_key = cfg, image_key
        self.label_key = "label" if is_conditional(vae) else None

    def _labels(self, batch: Batch) -> torch.Tensor | None:
        return batch[self.label_key] if self.label_key else None

    def loss(self, batch: Batch) -> LossOutput:
        vae = self.modules["vae"]
        assert isinstance(vae, VAE)
        x = batch[self.image_key]
        out = self.nets["vae"](x, self._labels(batch))
        log_px = decoder_log_likelihood(vae.likelihood, out.params.float(), x, vae.log_sigma)
        kl = kl_divergence(out.mu.float(), out.logvar.float())
        per_example = elbo(log_px, kl, self.cfg.beta)
        return LossOutput(
            loss=-per_example.mean(),
            stats={
                "elbo": elbo(log_px, kl).mean().detach(),
                "recon_nll": -log_px.mean().detach(),
                "kl": kl.mean().detach(),
            },
        )

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        vae = self.modules["vae"]
        assert isinstance(vae, VAE)
        with eval_mode(vae):
            generator = torch.Generator().manual_seed(seed)
            x, labels = fixed[self.image_key][:32], None if self.label_key is None else fixed[self.label_key][:32]
            pairs = torch.stack([x, vae.reconstruct(x, labels)], dim=1).flatten(0, 1)  # original | reconstruction
            grids = {
                "samples": Grid(vae.sample(64, generator=generator), 8),
                "reconstructions": Grid(pairs, 8),
            }
            if self.label_key is None:
                mu = vae.encode(x[:1])[0][0]  # the first image's posterior mean
                grids["traversal"] = traversal_grid(vae, mu)
            else:
                grids["classes"] = class_grid(vae, seed)
        return grids


@register_objective("vae", VAEObjectiveConfig)
def build_vae_step(cfg: VAEObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig) -> VAEStep:
    return VAEStep(cfg, modules["vae"], sample_field(spec))
