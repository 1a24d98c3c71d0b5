"""The step of diffusion and flow-matching models (genlab.models.diffusion): one phase that regresses
the net's prediction at a random time t on its target, an EMA of the weights as the export (Ho et
al. 2020 sample from an EMA of decay 0.9999), and class labels (or captions) dropped with
probability ``uncond_prob`` so that one net is both the conditional and the unconditional model
that classifier-free guidance mixes (Ho & Salimans 2022, who found 0.1-0.2 best)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from genlab.config import EXAMPLE_FILES, PROBABILITY, ExampleRun, Range, TrainConfig
from genlab.data.base import Batch, Spec, sample_field
from genlab.images import Grid
from genlab.losses.diffusion import denoising_loss
from genlab.models.diffusion import Diffusion
from genlab.models.protocols import eval_mode
from genlab.registry import register_objective
from genlab.training.ema import ema_update, make_ema
from genlab.training.objectives.single import AdamObjectiveConfig
from genlab.training.objectives.snapshots import class_grid
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step

STRIP_SAMPLES = 8  # rows of the denoising snapshot


@dataclass
class DiffusionObjectiveConfig(AdamObjectiveConfig):
    name: str = "diffusion"
    family: ClassVar[str] = "diffusion"
    lr: float = 2e-4  # DDPM's on CIFAR-10
    ema_decay: float = 0.999  # per step; 0 exports the raw net
    uncond_prob: float = 0.1  # of a conditional model: how often a label (caption) becomes "no class" (empty)
    bounds: ClassVar[dict[str, Range]] = {
        **AdamObjectiveConfig.bounds,
        "ema_decay": Range(0, 1, high_open=True, note="0 turns the EMA off"),
        "uncond_prob": PROBABILITY,
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "ddpm",
            {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
            {"name": "ddpm", "channels": 8, "channel_mult": [1, 2], "blocks_per_level": 1, "steps": 4},
            {"name": "diffusion"},
            slow=True,  # ~7 s on EPYC-Zen4 (the conditional flow below: ~16 s)
        ),
        ExampleRun(
            "flow_matching_conditional",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512},
            {
                "name": "flow_matching",
                "channels": 8,
                "channel_mult": [1, 2],
                "blocks_per_level": 1,
                "steps": 2,
                "sampler": "heun",
                "conditional": True,
                "guidance": 2.0,
            },
            {"name": "diffusion", "ema_decay": 0.9},
            slow=True,
        ),
    )


class DiffusionStep(Step):
    def __init__(self, cfg: DiffusionObjectiveConfig, model: Diffusion, image_key: str) -> None:
        self.cfg, self.image_key = cfg, image_key
        self.label_key = "label" if model.num_classes else getattr(model, "condition_key", None)
        self.modules = {"model": model}
        if cfg.ema_decay > 0:
            self.modules["model_ema"] = make_ema(model)
        self.export = Export("model_ema" if cfg.ema_decay > 0 else "model", "model")
        self.optimizers = {"model": adam(model.parameters(), cfg.lr, cfg.betas, cfg.weight_decay)}
        self.ema_updates = 0

    def phases(self) -> list[Phase]:
        return [Phase("model", "model", ("model",), self.loss, after_step=self._update_ema)]

    def _model(self) -> Diffusion:
        model = self.modules["model"]
        assert isinstance(model, Diffusion)
        return model

    def loss(self, batch: Batch) -> LossOutput:
        """The denoising loss at times drawn per example (all randomness from the global RNG)."""
        model, x0 = self._model(), batch[self.image_key]
        t = model.draw_times(x0.shape[0], x0.device)
        # drawn in logical order (randn_like would follow x0's layout): channels_last changes no value
        noise = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device)
        x_t, target = model.noised(x0, noise, t)
        labels = None
        if self.label_key and model.net.condition is not None:
            labels = batch[self.label_key]
            dropped = torch.rand(labels.shape[0], device=labels.device) < self.cfg.uncond_prob
            labels = model.net.condition.dropped(labels, dropped)
        per_example = denoising_loss(self.nets["model"](x_t, t, labels), target)
        return LossOutput(per_example.mean(), {"mse": per_example.mean().detach()})

    def _update_ema(self) -> None:
        if "model_ema" in self.modules:
            ema_update(self.modules["model_ema"], self.modules["model"], self.cfg.ema_decay, self.ema_updates)
            self.ema_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"ema_updates": self.ema_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema_updates = int(state["ema_updates"])

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """64 samples of the export from noise fixed by ``seed``, the denoising strip of 8 of them
        (noise on the left, the sample on the right) and, for a conditional model, its class grid.
        A text model's samples are of random captions drawn from ``seed``."""
        with eval_mode(self.modules[self.export.module]) as model:
            assert isinstance(model, Diffusion)
            generator = torch.Generator().manual_seed(seed)
            z = model.latents(64, generator=generator)
            labels: Tensor | None = model.condition(64, None, generator)  # random captions of a text model
            if model.num_classes:
                labels = torch.arange(64, device=z.device) % model.num_classes
            states = model.trajectory(z, labels)  # one pass gives both: its last state is decode(z, labels)
            grids = {"samples": Grid(states[-1], 8)}
            strip = [state[:STRIP_SAMPLES] for state in states]
            grids["denoising"] = Grid(torch.stack(strip, dim=1).flatten(0, 1), len(strip))
            if model.num_classes:
                grids["classes"] = class_grid(model, seed)
        return grids


@register_objective("diffusion", DiffusionObjectiveConfig)
def build_diffusion_step(cfg: DiffusionObjectiveConfig, modules: dict, spec: Spec, train: TrainConfig) -> DiffusionStep:
    model = modules["model"]
    assert isinstance(model, Diffusion)
    return DiffusionStep(cfg, model, sample_field(spec))
