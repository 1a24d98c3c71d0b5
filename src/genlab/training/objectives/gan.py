"""The GAN family's step: k discriminator updates, then one generator update.

Phases per iteration: ``D`` ``n_critic`` times, each on a fresh real batch with detached
fakes, then ``G`` once on the last batch (the loop freezes D for it). Separate optimisers
and learning rates (two time-scale, Heusel et al. 2017). An optional EMA copy of G
(``G_ema``) is what snapshots show and what a run exports.

Class-conditional models (a G with ``num_classes > 0``: cGAN, projection discriminators)
get the batch's labels: G draws fakes of the real batch's classes, and D scores
(image, label) pairs.

Regularisers (gradient penalty, R1, conditioning KL, orthogonal, path length) are terms
(training/regularisers), listed in ``objective.regularisers``: each with its weight, its interval
and its phase, added to that phase's loss by ``regularisers.regularise``; the losses here never
name one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from genlab.config import (
    EXAMPLE_FILES,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    ExampleRun,
    ObjectiveConfig,
    Range,
    RegulariserConfig,
    TrainConfig,
    at_least,
)
from genlab.data.base import Batch, Spec, sample_field
from genlab.errors import ConfigError
from genlab.images import Grid
from genlab.losses import gan as L
from genlab.models.layers import Generator
from genlab.models.protocols import LatentSampler, SpectralNormOption, eval_mode, is_conditional
from genlab.registry import register_objective
from genlab.training.ema import ema_update, make_ema
from genlab.training.health import GANHealth, RunSettings, run_advice
from genlab.training.objectives.snapshots import class_grid
from genlab.training.optim import adam
from genlab.training.regularisers import (
    Pass,
    Regularisers,
    Term,
    batch_norms,
    build_terms,
    has_batch_norm,
    upgrade_flat_keys,
)
from genlab.training.step import Export, LossOutput, Phase, Step

Loss = Literal["minimax", "nonsaturating", "lsgan", "wgan", "wgan_gp", "hinge"]

# loss name -> (D's loss from real and fake outputs, G's loss from fake outputs)
LOSSES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "minimax": (L.d_minimax, L.g_saturating),
    "nonsaturating": (L.d_minimax, L.g_nonsaturating),
    "lsgan": (L.d_lsgan, L.g_lsgan),
    "wgan": (L.d_wasserstein, L.g_wasserstein),
    "wgan_gp": (L.d_wasserstein, L.g_wasserstein),
    "hinge": (L.d_hinge, L.g_hinge),
}
PROBABILITY_LOSSES = ("minimax", "nonsaturating")  # D's output is the logit of a probability


@dataclass
class GANObjectiveConfig(ObjectiveConfig):
    name: str = "gan"
    family: ClassVar[str] = "gan"
    loss: Loss = "nonsaturating"
    n_critic: int = 1  # D updates per G update (k in Goodfellow et al.; 5 for WGAN)
    lr_d: float = 2e-4
    lr_g: float = 2e-4
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"  # rmsprop for WGAN's weight clipping
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's
    momentum: float = 0.5  # sgd's (Goodfellow et al. 2014: 0.5, raised to 0.7 over training)
    clip: float = 0.01  # wgan: D's weights are clipped to [-clip, clip]
    ema_decay: float = 0.999  # per G update; 0 exports G itself instead of an EMA copy
    # conditional D also sees real images with mismatched conditions as fakes (GAN-INT-CLS)
    matching_aware: bool = False
    mismatch_field: str = ""  # matching_aware: the batch field of each real example's wrong condition (captioned
    # data: caption_one_off, one attribute changed); empty: the next example's condition, as in the paper
    # Penalty terms (training/regularisers): gp (implied by loss=wgan_gp), r1, ortho, path_length, condition_kl
    # (implied by a text G), each {name, weight, every, ...}; in this order they join their phase's loss.
    regularisers: list[RegulariserConfig] = field(default_factory=list)
    bounds: ClassVar[dict[str, Range]] = {
        "n_critic": at_least(1, "D steps per G step"),
        "lr_d": POSITIVE,
        "lr_g": POSITIVE,
        "betas": PROBABILITY,
        "momentum": PROBABILITY,
        "clip": NON_NEGATIVE,
        "ema_decay": Range(0, 1, high_open=True, note="0 turns the EMA off"),
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        ExampleRun(
            "gan_k2_ema",
            {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
            {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8},
            {"name": "gan", "n_critic": 2, "ema_decay": 0.99},
        ),
        ExampleRun(
            "wgan_gp",
            {"name": "sprites", "image_size": 28, "n_train": 512, "n_test": 64},
            {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8, "d_norm": "none"},
            {"name": "gan", "loss": "wgan_gp", "n_critic": 4},
        ),
        ExampleRun(
            "cgan",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512},
            {"name": "gan_mlp", "conditional": True, "g_hidden": 64, "g_label_hidden": 16, "d_units": 16},
            {"name": "gan", "ema_decay": 0.9},
        ),
        ExampleRun(
            "projection",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512},
            {
                "name": "sngan_projection",
                "latent_dim": 15,
                "g_channels": 8,
                "d_channels": 8,
                "attention_resolution": 14,
                "shared_embedding": True,
                "hierarchical_latent": True,
            },
            {"name": "gan", "loss": "hinge", "n_critic": 2, "regularisers": [{"name": "ortho", "weight": 1e-4}]},
            slow=True,
        ),
        # Conditioned on k-means clusters (fitted again on resume) that G draws from z when it samples.
        ExampleRun(
            "clusters",
            {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512, "clusters": 5},
            {"name": "sngan_projection", "conditional": False, "clusters": True, "g_channels": 8, "d_channels": 8},
            {"name": "gan", "loss": "hinge", "ema_decay": 0.99},
            slow=True,
        ),
        # Per-layer noise, mixing regularisation, lazy R1 and path-length counters, the path-length target.
        ExampleRun(
            "stylegan",
            {"name": "sprites", "image_size": 32, "n_train": 512, "n_test": 64},
            {
                "name": "stylegan",
                "latent_dim": 8,
                "w_dim": 8,
                "mapping_layers": 2,
                "g_channels": 4,
                "d_channels": 4,
                "max_channels": 16,
            },
            {
                "name": "gan",
                "betas": [0.0, 0.99],
                "regularisers": [{"name": "r1", "weight": 1.0, "every": 2}, {"name": "path_length", "every": 2}],
            },
            slow=True,
        ),
        # Stages of 100 images: the stop at 320 falls mid-way through the fade-in of 16x16 (300..400).
        ExampleRun(
            "progan",
            {"name": "sprites", "image_size": 32, "n_train": 512, "n_test": 64},
            {
                "name": "progan",
                "latent_dim": 8,
                "g_channels": 4,
                "d_channels": 4,
                "max_channels": 16,
                "stage_kimg": 0.1,
            },
            {"name": "gan", "regularisers": [{"name": "r1"}]},
            slow=True,
        ),
        # Captions through G and D, the matching-aware term (rolled captions), conditioning augmentation's KL.
        ExampleRun(
            "text_gan",
            {
                "name": "captioned",
                "base": {"name": "sprites", "color": True, "image_size": 32, "n_train": 512, "n_test": 64},
            },
            {"name": "text_gan", "noise_dim": 8, "c_dim": 4, "text_dim": 8, "g_channels": 4, "d_channels": 4},
            {"name": "gan", "matching_aware": True, "ema_decay": 0.99},
            slow=True,
        ),
    )

    def __post_init__(self) -> None:
        if self.loss == "wgan" and self.clip <= 0:
            raise ConfigError("objective.loss=wgan bounds the critic by weight clipping: set objective.clip > 0")

    @classmethod
    def upgrade(cls, raw: dict) -> dict:
        """Runs and configs from before the terms had flat keys (``r1_weight``, ``pl_every``, ...); each becomes
        its entry where it changed the run: gp only under wgan_gp, and gp and condition_kl only at weights
        other than those their loss or model imply."""
        implied = {"gp": 10.0, "condition_kl": 1.0}
        return upgrade_flat_keys(
            raw,
            FLAT_KEYS,
            lambda e: (
                (e["name"] != "gp" or raw.get("loss") == "wgan_gp")
                and e.get("weight", 0.0) != implied.get(e["name"], 0.0)
            ),
        )


# The regularisers' keys before they were terms -> (term, its key), in the order the terms joined their phase's loss.
FLAT_KEYS = {
    "gp_weight": ("gp", "weight"),
    "r1_weight": ("r1", "weight"),
    "r1_every": ("r1", "every"),
    "ca_kl_weight": ("condition_kl", "weight"),
    "ortho_weight": ("ortho", "weight"),
    "pl_weight": ("path_length", "weight"),
    "pl_every": ("path_length", "every"),
    "pl_decay": ("path_length", "decay"),
}


def make_optimizer(cfg: GANObjectiveConfig, params, lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return adam(params, lr, cfg.betas)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    return torch.optim.RMSprop(params, lr=lr)


STANDING_BATCHES, STANDING_BATCH_SIZE = 16, 64  # 1,024 samples, as many as a few of BigGAN's batches


@torch.no_grad()
def standing_statistics(G: nn.Module, batches: int = STANDING_BATCHES, batch_size: int = STANDING_BATCH_SIZE) -> None:
    """BigGAN's standing statistics: G's batch-norm running statistics set to the plain average
    over ``batches`` batches of its own samples (fixed latents and classes: seed 0).

    An EMA generator needs them: its weights are an average of G's, so G's running statistics
    (what was copied before) do not describe its activations. On the projection cGAN at 200 kimg
    the export's FID-MNIST went from 21.8 with G's statistics to 17.6 with these (docs/benchmarks.md).
    A G without batch norm is left as it is; the global RNG is not touched.
    """
    norms = batch_norms(G)
    if not norms:
        return
    assert isinstance(G, LatentSampler)  # every GAN generator is one
    momenta = [m.momentum for m in norms]
    was_training = G.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    generator = torch.Generator().manual_seed(0)
    G.train()
    try:
        for _ in range(batches):
            G.sample(batch_size, generator=generator)
    finally:
        G.train(was_training)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum


@torch.no_grad()
def batch_diversity(fake: Tensor, real: Tensor, n: int = 64) -> Tensor:
    """Mean pairwise L2 distance of up to ``n`` fakes over that of as many reals (~1 healthy, ~0 collapsed)."""
    return _mean_pairwise_distance(fake[:n]) / _mean_pairwise_distance(real[:n]).clamp_min(1e-8)


def _mean_pairwise_distance(x: Tensor) -> Tensor:
    return torch.pdist(x.flatten(1).float()).mean()


class GANStep(Step):
    def __init__(self, cfg: GANObjectiveConfig, G: Generator, D: nn.Module, real_key: str, terms: list[Term]) -> None:
        self.cfg, self.real_key = cfg, real_key
        # The batch field G and D are conditioned on: class labels, or a text G's captions.
        self.label_key = "label" if is_conditional(G) else getattr(G, "condition_key", None)
        self.d_loss_fn, self.g_loss_fn = LOSSES[cfg.loss]
        self.modules = {"G": G, "D": D}
        if cfg.ema_decay > 0:
            self.modules["G_ema"] = make_ema(G)
        self.export = Export("G_ema" if cfg.ema_decay > 0 else "G", "G")
        self.optimizers = {
            "D": make_optimizer(cfg, D.parameters(), cfg.lr_d),
            "G": make_optimizer(cfg, G.parameters(), cfg.lr_g),
        }
        self.health = GANHealth(cfg.loss, run_advice(_run_settings(cfg, D, terms)))
        self.ema_updates = 0
        self.regularisers = Regularisers(terms)

    def phases(self) -> list[Phase]:
        clip = self._clip_d if self.cfg.loss == "wgan" else None
        return [
            Phase("D", "D", ("D",), self.d_loss, repeats=self.cfg.n_critic, after_step=clip),
            Phase("G", "G", ("G",), self.g_loss, reuse_batch=True, after_step=self._update_ema),
        ]

    def _scores(self, logits: Tensor) -> Tensor:
        """Mean D output as logged: a probability for the minimax losses, else the raw score."""
        return (logits.sigmoid() if self.cfg.loss in PROBABILITY_LOSSES else logits).mean().detach()

    def _generator(self) -> Generator:
        G = self.modules["G"]
        assert isinstance(G, Generator)
        return G

    def _fakes(self, batch: Batch) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Fakes for ``batch`` and the extra arguments (the labels) that G and D take with them."""
        cond = () if self.label_key is None else (batch[self.label_key],)
        return self.nets["G"](self._generator().latents(len(batch)), *cond), cond

    def d_loss(self, batch: Batch) -> LossOutput:
        D = self.nets["D"]
        with torch.no_grad():  # D's step never reaches G: fakes are constants here
            fake, cond = self._fakes(batch)
        # input gradients only when a due term needs them (R1)
        real_grad = any(t.needs_real_grad for t in self.regularisers.due("D"))
        real = batch[self.real_key].detach().requires_grad_(real_grad)
        real_logits, fake_logits = D(real, *cond).float(), D(fake, *cond).float()
        loss = self.d_loss_fn(real_logits, fake_logits)
        stats: dict[str, Tensor | float] = {  # the loop adds "loss" (with penalties) and "grad_norm"
            "D(x)": self._scores(real_logits),
            "D(G(z))": self._scores(fake_logits),
        }
        if self.cfg.matching_aware and cond:
            # Real images with the next example's condition count as fakes: half the fake term each
            # (Reed et al.'s L_D = log D(x, h) + [log(1 - D(x, h')) + log(1 - D(G(z, h), h))] / 2).
            wrong = (
                (batch[self.cfg.mismatch_field],)
                if self.cfg.mismatch_field
                else (torch.roll(c, 1, dims=0) for c in cond)
            )
            mismatched_logits = D(real, *wrong).float()
            loss = 0.5 * (loss + self.d_loss_fn(real_logits, mismatched_logits))
            stats["D(x, wrong condition)"] = self._scores(mismatched_logits)
        if self.cfg.loss in ("wgan", "wgan_gp"):
            stats["wasserstein"] = L.wasserstein_estimate(real_logits, fake_logits).detach()
        done = Pass(batch, fake, cond, real, real_logits, lambda x: D(x, *cond))
        return LossOutput(self.regularisers.add("D", loss, stats, done), stats)

    def g_loss(self, batch: Batch) -> LossOutput:
        cond = () if self.label_key is None else (batch[self.label_key],)
        z = self._generator().latents(len(batch))
        asked = [t.g_output for t in self.regularisers.due("G") if t.g_output is not None]  # at most one
        # A term's input that comes out of G's own forward pass, through its DDP wrapper.
        fake, extra = self.nets["G"](z, *cond, **{asked[0]: True}) if asked else (self.nets["G"](z, *cond), None)
        loss = self.g_loss_fn(self.nets["D"](fake, *cond).float())
        stats: dict[str, Tensor | float] = {"diversity": batch_diversity(fake, batch[self.real_key])}
        return LossOutput(self.regularisers.add("G", loss, stats, Pass(batch, fake, cond, g_output=extra)), stats)

    def _clip_d(self) -> None:
        L.clip_weights(self.modules["D"], self.cfg.clip)

    def prepare_export(self) -> None:
        if "G_ema" in self.modules:
            standing_statistics(self.modules["G_ema"])

    def _update_ema(self) -> None:
        if "G_ema" in self.modules:
            ema_update(self.modules["G_ema"], self.modules["G"], self.cfg.ema_decay, self.ema_updates)
            self.ema_updates += 1

    def state_dict(self) -> dict:
        return {"ema_updates": self.ema_updates, "health": self.health.state_dict(), **self.regularisers.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ema_updates = int(state["ema_updates"])
        self.health.load_state_dict(state["health"])
        self.regularisers.load_state_dict(state)

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """64 samples of the exported generator from latents fixed by ``seed`` (and of raw G when an EMA exists),
        plus a class x seed grid for conditional models.

        Toy generators of points (not images) have no grid to show: none is returned.
        """
        if fixed[self.real_key].dim() != 4:
            return {}
        names = {"samples": self.export.module} | ({"samples_G": "G"} if self.export.module != "G" else {})
        grids = {}
        for key, name in names.items():
            with eval_mode(self.modules[name]) as G:
                assert isinstance(G, LatentSampler)
                grids[key] = Grid(G.sample(64, generator=torch.Generator().manual_seed(seed)), 8)
        if self.label_key == "label":
            with eval_mode(self.modules[self.export.module]) as G:
                assert isinstance(G, LatentSampler)
                grids["classes"] = class_grid(G, seed)
        return grids

    def check_health(self, stats: dict[str, float], iteration: int) -> list[str]:
        return self.health(stats)  # the loop prefixes each warning with the iteration and kimg


@register_objective("gan", GANObjectiveConfig)
def build_gan_step(cfg: GANObjectiveConfig, modules: dict[str, nn.Module], spec: Spec, train: TrainConfig) -> GANStep:
    if cfg.mismatch_field and (not cfg.matching_aware or cfg.mismatch_field not in spec):
        raise ConfigError(
            f"objective.mismatch_field={cfg.mismatch_field!r} names the wrong conditions of a matching-aware D: "
            f"it needs objective.matching_aware=true and a field of the data ({', '.join(spec)})"
        )
    G = modules["G"]
    assert isinstance(G, Generator)
    terms = build_terms(cfg, cfg.regularisers, modules)
    return GANStep(cfg, G, modules["D"], sample_field(spec), terms)


def _run_settings(cfg: GANObjectiveConfig, D: nn.Module, terms: list[Term]) -> RunSettings:
    """What the health monitor's advice may suggest changing in this run."""
    return RunSettings(
        loss=cfg.loss,
        lr_d=cfg.lr_d,
        lr_g=cfg.lr_g,
        n_critic=cfg.n_critic,
        r1=any(t.needs_real_grad for t in terms),
        spectral_norm=_spectrally_normalised(D),
        batch_norm_in_d=has_batch_norm(D),
        spectral_norm_setting=D.spectral_norm_setting if isinstance(D, SpectralNormOption) else None,
    )


def _spectrally_normalised(D: nn.Module) -> bool:
    """Whether a weight of ``D`` carries torch's spectral-norm parametrization (its class, _SpectralNorm, is private:
    there is no public type to test for)."""
    for module in D.modules():
        lists = getattr(module, "parametrizations", None)
        if isinstance(lists, nn.ModuleDict) and any(
            type(p).__name__ == "_SpectralNorm" for ps in lists.values() for p in ps.children()
        ):
            return True
    return False
