"""SPADE's training (Park et al. 2019): the hinge GAN loss over a multi-scale PatchGAN that sees the label map
beside the image, G's feature matching on D's layers (weight 10), and the style encoder's KL to N(0, I)
(weight 0.05), with the paper's two time-scale Adam (G 1e-4, D 4e-4, betas (0, 0.9)). The style image of a
training pair is its own target, as in the paper's multimodal mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ExampleRun, ObjectiveConfig, Range, TrainConfig
from genlab.data.base import Batch, Spec, image_field
from genlab.data.pairs import palette_image
from genlab.gaussians import kl_divergence
from genlab.images import Grid, to_model
from genlab.losses.gan import d_hinge, g_hinge
from genlab.models.spade import MultiscaleDiscriminator, SPADEGenerator, label_field
from genlab.registry import register_objective
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step

GRID_LAYOUTS, GRID_STYLES = 6, 4  # the snapshot's label maps (columns) and style images (rows)


@dataclass
class SPADEObjectiveConfig(ObjectiveConfig):
    name: str = "spade"
    family: ClassVar[str] = "spade"
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.9)
    fm_weight: float = 10.0  # feature matching (the paper's lambda_FM)
    kl_weight: float = 0.05  # the style encoder's KL (the paper's)
    bounds: ClassVar[dict[str, Range]] = {
        "lr_g": POSITIVE,
        "lr_d": POSITIVE,
        "betas": PROBABILITY,
        "fm_weight": NON_NEGATIVE,
        "kl_weight": NON_NEGATIVE,
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "spade",
            {"name": "color_sprites", "image_size": 16, "n_train": 512, "n_test": 64},
            {"name": "spade", "g_channels": 2, "z_dim": 4, "hidden": 4, "d_channels": 4, "d_layers": 2},
            {"name": "spade"},
            slow=True,  # 2.5 s on EPYC-Zen4
        ),
    )


def feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """pix2pixHD's feature-matching loss, as SPADE's code computes it: the mean L1 distance between D's features
    of real and generated images at each layer but the logits, summed over the layers, averaged over scales."""
    per_scale = [
        torch.stack([(f - r.detach()).abs().mean() for r, f in zip(rs[:-1], fs[:-1], strict=True)]).sum()
        for rs, fs in zip(real, fake, strict=True)
    ]
    return torch.stack(per_scale).mean()


class SPADEStep(Step):
    def __init__(
        self, cfg: SPADEObjectiveConfig, G: SPADEGenerator, D: MultiscaleDiscriminator, image_key: str, label_key: str
    ) -> None:
        self.cfg, self.image_key, self.label_key = cfg, image_key, label_key
        self.modules = {"G": G, "D": D}
        self.optimizers = {
            "G": adam(G.parameters(), cfg.lr_g, cfg.betas),
            "D": adam(D.parameters(), cfg.lr_d, cfg.betas),
        }
        self.export = Export("G", "G")

    def phases(self) -> list[Phase]:
        return [Phase("D", "D", ("D",), self.d_loss), Phase("G", "G", ("G",), self.g_loss, reuse_batch=True)]

    def d_loss(self, batch: Batch) -> LossOutput:
        labels, real = batch[self.label_key], batch[self.image_key]
        with torch.no_grad():
            fake, _, _ = self.nets["G"](labels, real)
        real_out, fake_out = self.nets["D"](labels, real), self.nets["D"](labels, fake)
        loss = torch.stack([d_hinge(r[-1].float(), f[-1].float()) for r, f in zip(real_out, fake_out, strict=True)])
        return LossOutput(
            loss.mean(), {"D(x)": real_out[0][-1].mean().detach(), "D(G(x))": fake_out[0][-1].mean().detach()}
        )

    def g_loss(self, batch: Batch) -> LossOutput:
        labels, real = batch[self.label_key], batch[self.image_key]
        fake, mu, logvar = self.nets["G"](labels, real)
        fake_out = self.nets["D"](labels, fake)
        with torch.no_grad():
            real_out = self.nets["D"](labels, real)
        gan = torch.stack([g_hinge(f[-1].float()) for f in fake_out]).mean()
        fm = feature_matching(real_out, fake_out)
        kl = kl_divergence(mu.float(), logvar.float()).mean()
        loss = gan + self.cfg.fm_weight * fm + self.cfg.kl_weight * kl
        return LossOutput(loss, {"gan": gan.detach(), "feature_matching": fm.detach(), "kl": kl.detach()})

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Label maps across the top, style images down the side, each cell the first's layout in the second's
        style."""
        labels, images = (
            fixed[self.label_key][:GRID_LAYOUTS],
            fixed[self.image_key][GRID_LAYOUTS : GRID_LAYOUTS + GRID_STYLES],
        )
        G = self.modules["G"]
        assert isinstance(G, SPADEGenerator)
        rows = [torch.cat([torch.ones_like(images[:1]), to_model(palette_image(labels.cpu())).to(images.device)])]
        for style in images:
            cells = G.synthesise(labels, style[None].expand(len(labels), -1, -1, -1))
            rows.append(torch.cat([style[None], cells]))
        return {"layout_x_style": Grid(torch.cat(rows), GRID_LAYOUTS + 1)}


@register_objective("spade", SPADEObjectiveConfig)
def build_spade_step(cfg: SPADEObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig) -> SPADEStep:
    label_key, _ = label_field(spec, "spade")
    image_field(spec, "spade")
    return SPADEStep(cfg, modules["G"], modules["D"], "image", label_key)
