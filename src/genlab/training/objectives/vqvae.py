"""VQ-VAE's two stages in one run (van den Oord et al. 2017): the autoencoder (the decoder's
log-likelihood and the commitment loss; the codebook moves by its own moving averages), then the
PixelCNN prior over the frozen codes. One phase, one Adam with a parameter group per part: the model's
stage (which the loop sets from the images seen) decides which part the loss reaches, and the other
part gets no gradient, so Adam leaves it alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from genlab.config import EXAMPLE_FILES, NON_NEGATIVE, POSITIVE, ExampleRun, Range, TrainConfig
from genlab.data.base import Batch, Spec, sample_field
from genlab.discrete import bits_per_dim
from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.models.protocols import eval_mode, is_conditional
from genlab.models.vqvae import VQVAE
from genlab.registry import register_objective
from genlab.training.objectives.single import AdamObjectiveConfig
from genlab.training.objectives.snapshots import class_grid, side_by_side
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step

SNAPSHOT_SAMPLES = 32


@dataclass
class VQVAEObjectiveConfig(AdamObjectiveConfig):
    name: str = "vqvae"
    family: ClassVar[str] = "vqvae"
    lr: float = 2e-4  # of the encoder and decoder (the paper's)
    prior_lr: float = 1e-3  # of the prior
    beta: float = 0.25  # weight of the commitment loss (the paper's)
    bounds: ClassVar[dict[str, Range]] = {**AdamObjectiveConfig.bounds, "prior_lr": POSITIVE, "beta": NON_NEGATIVE}
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "vqvae_two_stages",  # stops in the first stage and crosses into the second after the resume
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512, "binarize": True, "image_size": 12},
            {
                "name": "vqvae",
                "levels": 2,
                "codes": 8,
                "code_dim": 4,
                "channels": 8,
                "res_blocks": 1,
                "prior_channels": 8,
                "prior_layers": 2,
                "conditional": True,
                "autoencoder_kimg": 0.4,
            },
            {"name": "vqvae"},
        ),
    )


class VQVAEStep(Step):
    def __init__(self, cfg: VQVAEObjectiveConfig, model: VQVAE, image_key: str) -> None:
        self.cfg, self.image_key, self.num_codes = cfg, image_key, model.num_codes
        self.label_key = "label" if is_conditional(model) else None
        self.modules = {"model": model}
        self.export = Export("model", "model")
        groups = [
            {"params": model.autoencoder_parameters(), "lr": cfg.lr},
            {"params": model.prior_parameters(), "lr": cfg.prior_lr},
        ]
        self.optimizers = {"model": adam(groups, cfg.lr, cfg.betas, cfg.weight_decay)}

    def phases(self) -> list[Phase]:
        return [Phase("model", "model", ("model",), self.loss)]

    def loss(self, batch: Batch) -> LossOutput:
        """Per dimension, so that the learning rates do not depend on the image or grid size; the logs say
        it in nats per image (the autoencoder's) and per code grid (the prior's)."""
        x = batch[self.image_key]
        out = self.nets["model"](x, batch[self.label_key] if self.label_key else None)
        if out.log_prior is not None:
            positions = out.positions
            nll = -out.log_prior.mean()
            return LossOutput(
                loss=nll / positions,
                stats={"prior_nll_nats": nll.detach(), "prior_bits_per_code": bits_per_dim(-nll.detach(), positions)},
            )
        assert out.log_px is not None and out.commitment is not None
        recon, commitment = -out.log_px.mean(), out.commitment.mean()
        usage = torch.bincount(out.codes.bottom.flatten(), minlength=self.num_codes).float()
        p = usage / usage.sum()
        return LossOutput(
            loss=(recon + self.cfg.beta * commitment) / x[0].numel(),
            stats={
                "recon_nll_nats": recon.detach(),
                "commitment": commitment.detach(),
                "perplexity": torch.exp(-(p * p.clamp_min(1e-12).log()).sum()),  # bottom codes in use, effectively
            },
        )

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Originals beside their reconstructions; in the second stage also samples of the prior (and the class
        grid of a conditional one)."""
        model = self.modules["model"]
        assert isinstance(model, VQVAE)
        with eval_mode(model):
            x = fixed[self.image_key][:32]
            grids = {"reconstructions": side_by_side(x, model.reconstruct(x))}
            if int(model.stage) == 1:
                generator = torch.Generator().manual_seed(seed)
                grids["samples"] = Grid(model.sample(SNAPSHOT_SAMPLES, generator=generator), 8)
                if is_conditional(model):
                    grids["classes"] = class_grid(model, seed, columns=4)
        return grids


@register_objective("vqvae", VQVAEObjectiveConfig)
def build_vqvae_step(cfg: VQVAEObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig) -> VQVAEStep:
    model = modules["model"]
    if not isinstance(model, VQVAE):
        raise ConfigError(f"objective 'vqvae' trains model 'vqvae', not {type(model).__name__}")
    if model.autoencoder_images >= train.kimg * 1000:
        raise ConfigError(
            f"model.autoencoder_kimg={model.autoencoder_images / 1000:g} leaves nothing of train.kimg={train.kimg:g} "
            "for the prior: set train.kimg above it (the prior trains for the rest)"
        )
    return VQVAEStep(cfg, model, sample_field(spec))
