"""CycleGAN's step (Zhu et al., ICCV 2017): two LSGANs tied by cycle consistency, on unpaired
domains ``{"a": Image, "b": Image}``.

Phases per iteration: ``G`` on a fresh batch (both generators, one Adam): fool D_B with
G_AB(a) and D_A with G_BA(b) (least squares, E[(D(G(x)) - 1)^2]), plus ``cycle_weight`` *
(|G_BA(G_AB(a)) - a|_1 + ``bab_cycle_ratio`` * |G_AB(G_BA(b)) - b|_1), plus ``identity_weight`` *
(|G_BA(a) - a|_1 + |G_AB(b) - b|_1). Then ``D`` on the same batch (``reuse_batch``; both discriminators, one
Adam): real images against fakes drawn from a history of 50 earlier fakes per domain
(Shrivastava et al. 2017), each D's loss 1/2 (E[(D(x) - 1)^2] + E[D(fake)^2]).
Adam lr 2e-4, betas (0.5, 0.999). The paper's learning-rate decay (constant for the first
half, then linear to 0) is the loop's: ``train.lr_schedule: {kind: linear, decay_start_kimg:
<half of kimg>}``.

The identity term (the code's ``lambda_identity`` 0.5, i.e. half of ``cycle_weight``) needs
G_AB to accept images of domain B: it applies only when both domains have the same number
of channels, and is left out (with its stats) when they differ, e.g. grey <-> colour.

The history pools are the step's state (their images and their own seeded generator), so
a resumed run draws the same fakes. D sees the fakes that G's phase made before G's
update, as in the authors' code; a D phase called on a batch G's phase did not see
(e.g. alone) makes its own, without gradients.

Differences from the authors' code: the G's LSGAN term is the paper's (twice losses.gan's
1/2 E[(D - 1)^2]); the paper trains at batch size 1, genlab's configs use larger batches.
One "image seen" is one example, i.e. one image of each domain.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import NON_NEGATIVE, POSITIVE, PROBABILITY, ExampleRun, ObjectiveConfig, Range, TrainConfig, at_least
from genlab.data.base import Batch, Spec
from genlab.images import Grid
from genlab.losses import gan as L
from genlab.models.protocols import Translator
from genlab.registry import register_objective
from genlab.training.objectives.snapshots import side_by_side
from genlab.training.optim import adam
from genlab.training.step import Export, LossOutput, Phase, Step

SNAPSHOT_ROWS = 8  # examples of the fixed batch shown per direction as input | translation | reconstruction
POOL_STREAMS = {"a": 1, "b": 2}  # per-domain offsets of the pools' seeds


@dataclass
class CycleGANObjectiveConfig(ObjectiveConfig):
    name: str = "cyclegan"
    family: ClassVar[str] = "cyclegan"
    cycle_weight: float = 10.0  # lambda of the cycle-consistency terms (the paper's 10; B->A->B: times the ratio below)
    # The B->A->B term's weight over cycle_weight (the paper's 1). The authors' code weighs each cycle by its
    # own lambda, and its lambda_B also scales G_AB's identity term; this ratio scales the cycle alone.
    # Below 1 it asks less of G_BA to hide B's content that A cannot show (the photo under an MNIST-M digit).
    bab_cycle_ratio: float = 1.0
    identity_weight: float = 5.0  # 0.5 * cycle_weight (the code's default); same channel counts only; 0 disables
    pool_size: int = 50  # fakes kept per domain for D; 0 disables (D sees the current fakes)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's
    bounds: ClassVar[dict[str, Range]] = {
        "cycle_weight": NON_NEGATIVE,
        "bab_cycle_ratio": NON_NEGATIVE,
        "identity_weight": NON_NEGATIVE,
        "pool_size": at_least(0, "0 disables the pool"),
        "lr_g": POSITIVE,
        "lr_d": POSITIVE,
        "betas": PROBABILITY,
    }
    resume_examples: ClassVar[tuple[ExampleRun, ...]] = (
        # A pool of 4 fakes per domain is full after the first batch: resume must restore its images and its generator.
        ExampleRun(
            "cyclegan",
            {
                "name": "unpaired",
                "a": {"name": "sprites", "image_size": 32, "n_train": 512, "n_test": 64},
                "b": {"name": "color_sprites", "image_size": 32, "n_train": 512, "n_test": 64},
            },
            {"name": "cyclegan", "g_channels": 4, "g_blocks": 1, "d_channels": 4},
            {"name": "cyclegan", "pool_size": 4},
            slow=True,
        ),
    )


class HistoryPool:
    """Earlier generated images that D is shown instead of, or besides, the newest ones.

    While fewer than ``size`` are stored, each new fake is stored and returned as is; once
    full, each is returned with probability 1/2, otherwise it replaces a uniformly chosen
    stored image, which is returned in its place. Draws come from the pool's own generator.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: list[Tensor] = []  # each [C, H, W]
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, fakes: Tensor) -> Tensor:
        """fakes: [N, C, H, W], detached -> [N, C, H, W], a mix of ``fakes`` and stored images."""
        if self.size == 0:
            return fakes
        swap = torch.rand(len(fakes), generator=self.generator) < 0.5
        slot = torch.randint(self.size, (len(fakes),), generator=self.generator)
        out = []
        for image, swapped, j in zip(fakes, swap.tolist(), slot.tolist(), strict=True):
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif swapped:
                out.append(self.images[j])
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Tensor]:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor], device: torch.device) -> None:
        self.images = list(state["images"].to(device).unbind(0)) if state["images"].numel() else []
        self.generator.set_state(state["generator"])


def g_lsgan(fake_logits: Tensor) -> Tensor:
    """The paper's E[(D(G(x)) - 1)^2] (losses.gan's g_lsgan is half of it)."""
    return 2 * L.g_lsgan(fake_logits)


class CycleGANStep(Step):
    def __init__(self, cfg: CycleGANObjectiveConfig, modules: dict[str, nn.Module], seed: int) -> None:
        self.cfg = cfg
        self.modules = {name: modules[name] for name in ("G_AB", "G_BA", "D_A", "D_B")}
        G_AB, G_BA, D_A, D_B = self.modules.values()
        self.optimizers = {
            "G": adam(itertools.chain(G_AB.parameters(), G_BA.parameters()), cfg.lr_g, cfg.betas),
            "D": adam(itertools.chain(D_A.parameters(), D_B.parameters()), cfg.lr_d, cfg.betas),
        }
        self.export = Export("G_AB", "G_AB")  # G_BA: genlab.load(run, role="G_BA")
        self.identity = cfg.identity_weight > 0 and G_AB.source_shape == G_AB.target_shape
        self.pools = {side: HistoryPool(cfg.pool_size, seed * 10 + offset) for side, offset in POOL_STREAMS.items()}
        self._fakes: tuple[Batch, Tensor, Tensor] | None = None  # (batch, G_BA(b), G_AB(a)) of the last G phase

    def phases(self) -> list[Phase]:
        return [
            Phase("G", "G", ("G_AB", "G_BA"), self.g_loss),
            Phase("D", "D", ("D_A", "D_B"), self.d_loss, reuse_batch=True),
        ]

    def g_loss(self, batch: Batch) -> LossOutput:
        a, b = batch["a"], batch["b"]
        G_AB, G_BA = self.nets["G_AB"], self.nets["G_BA"]
        fake_b, fake_a = G_AB(a), G_BA(b)
        cycle_a, cycle_b = F.l1_loss(G_BA(fake_b).float(), a), F.l1_loss(G_AB(fake_a).float(), b)
        gan_ab, gan_ba = g_lsgan(self.nets["D_B"](fake_b).float()), g_lsgan(self.nets["D_A"](fake_a).float())
        loss = gan_ab + gan_ba + self.cfg.cycle_weight * (cycle_a + self.cfg.bab_cycle_ratio * cycle_b)
        stats: dict[str, Tensor | float] = {
            "gan_AB": gan_ab.detach(),
            "gan_BA": gan_ba.detach(),
            "cycle_ABA": cycle_a.detach(),
            "cycle_BAB": cycle_b.detach(),
        }
        if self.identity:
            identity_a, identity_b = F.l1_loss(G_BA(a).float(), a), F.l1_loss(G_AB(b).float(), b)
            loss = loss + self.cfg.identity_weight * (identity_a + identity_b)
            stats |= {"identity_A": identity_a.detach(), "identity_B": identity_b.detach()}
        self._fakes = (batch, fake_a.detach().float(), fake_b.detach().float())
        return LossOutput(loss, stats)

    def _last_fakes(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(G_BA(b), G_AB(a)) as G's phase made them for ``batch``, else made now without gradients."""
        kept, self._fakes = self._fakes, None
        if kept is not None and kept[0] is batch:
            return kept[1], kept[2]
        with torch.no_grad():
            return self.nets["G_BA"](batch["b"]).float(), self.nets["G_AB"](batch["a"]).float()

    def d_loss(self, batch: Batch) -> LossOutput:
        a, b = batch["a"], batch["b"]
        fake_a, fake_b = self._last_fakes(batch)
        fake_a, fake_b = self.pools["a"].query(fake_a), self.pools["b"].query(fake_b)
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        real_a, pooled_a = D_A(a).float(), D_A(fake_a).float()
        real_b, pooled_b = D_B(b).float(), D_B(fake_b).float()
        loss = L.d_lsgan(real_a, pooled_a) + L.d_lsgan(real_b, pooled_b)
        return LossOutput(
            loss,
            {
                "D_A(a)": real_a.mean().detach(),
                "D_A(G_BA(b))": pooled_a.mean().detach(),
                "D_B(b)": real_b.mean().detach(),
                "D_B(G_AB(a))": pooled_b.mean().detach(),
            },
        )

    def snapshots(self, fixed: Batch, seed: int) -> dict[str, Grid]:
        """Rows of a | G_AB(a) | G_BA(G_AB(a)) and of b | G_BA(b) | G_AB(G_BA(b)) for the first
        examples of the fixed batch (G has no noise: ``seed`` is unused)."""
        a, b = fixed["a"][:SNAPSHOT_ROWS], fixed["b"][:SNAPSHOT_ROWS]
        G_AB, G_BA = self.modules["G_AB"], self.modules["G_BA"]
        assert isinstance(G_AB, Translator) and isinstance(G_BA, Translator)
        fake_b, fake_a = G_AB.translate(a), G_BA.translate(b)
        return {
            "translations_AtoB": side_by_side(a, fake_b, G_BA.translate(fake_b)),
            "translations_BtoA": side_by_side(b, fake_a, G_AB.translate(fake_a)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"pools": {side: pool.state_dict() for side, pool in self.pools.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = next(self.modules["G_AB"].parameters()).device
        for side, pool in self.pools.items():
            pool.load_state_dict(state["pools"][side], device)


@register_objective("cyclegan", CycleGANObjectiveConfig)
def build_cyclegan_step(
    cfg: CycleGANObjectiveConfig, modules: dict[str, nn.Module], spec: Spec, train: TrainConfig
) -> CycleGANStep:
    return CycleGANStep(cfg, modules, train.seed)
