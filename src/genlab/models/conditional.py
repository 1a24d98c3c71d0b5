"""Class-conditional ResNet GAN: SNGAN with a projection discriminator (Miyato & Koyama,
"cGANs with Projection Discriminator", ICLR 2018), with SAGAN's self-attention (Zhang et
al., ICML 2019) and BigGAN's generator options (Brock et al., ICLR 2019) as switches.

``sngan_projection``, for 28, 32 and 64 pixel images of any number of channels:

- G: z -> linear to a 7x7 (28 px) or 4x4 map, SNGAN's residual up-blocks doubling the side
  up to the image's, then BN-ReLU-conv3-tanh. With ``conditional`` every batch norm inside
  the blocks is a conditional batch norm (de Vries et al. 2017): BN without affine, then a
  gain and a bias of the class; the output BN stays plain, as in their code.
- D: SNGAN's residual down-blocks with spectral norm everywhere, halving the side to 8 or
  less, then two blocks at that side, ReLU and global sum pooling to h; the projection head
  is logit = linear(h) + <embed(y), h>, the embedding spectrally normalised too.
- ``attention_resolution``: a SAGAN self-attention block where G's and D's feature maps have
  that side (after G's stem or block producing it, after D's first block producing it).
- ``shared_embedding`` (BigGAN): one class embedding of ``embedding_dim`` for all of G, which
  each CBN maps linearly to its gain and bias, instead of per-block per-class tables.
  ``hierarchical_latent`` (BigGAN): z split into equal chunks, the first into the stem and one
  per block, each block's CBNs conditioned on [its chunk, the shared embedding].
  BigGAN's truncation trick is ``G.sample(n, truncation=t)`` (:class:`~genlab.models.layers.Generator`).
- ``conditional=false``: plain BN in G and no projection in D (SNGAN), for unlabelled data.
- ``clusters``: conditioned as above, but on the data's k-means clusters (``data.clusters``)
  instead of its classes; G draws each cluster as often as the training data holds it, from the
  first coordinate of z, so it stays a function of z alone and unconditional to every tool.
- ``taper``: widths halve each time the side doubles (DCGAN's and BigGAN's layout), from
  ``g_channels``/``d_channels`` at the smallest side, instead of one width everywhere: the
  full-size maps, where most of the work is, get the fewest channels (about 2.4x the images/s of
  equal widths on a 2-core CPU at 28 px; docs/benchmarks.md).

Differences: one width per net at every resolution (or ``taper``), with small defaults for CPU runs (SNGAN
on CIFAR-10: 256 in G, 128 in D; the ImageNet nets widen towards low resolutions); PyTorch's
default initialisation (theirs: Xavier uniform; BigGAN's: orthogonal); CBN gains are
1 + delta(c) with delta and the bias zero at init, so every CBN starts as plain BN (BigGAN's
linear maps start random); of BigGAN only the options above are taken (no spectral norm in
G, no BigGAN block layout); self-attention sits at one resolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Clusters, Image, Spec, cluster_shares_for, image_field, num_classes_for
from genlab.errors import ConfigError
from genlab.models.layers import DownBlock, Generator, SelfAttention
from genlab.registry import register_model

CLUSTERED_EXAMPLE_SPEC: Spec = {"image": Image(1, 32, 32), "cluster": Clusters((0.5, 0.3, 0.2))}

# Side of G's first feature map per supported image size; each block doubles it.
_BASE_SIDE = {28: 7, 32: 4, 64: 4}


def generator_sides(size: int) -> list[int]:
    """Sides of G's feature maps for ``size``-pixel images: the stem's, then each block's output."""
    base = _BASE_SIDE[size]
    return [base * 2**k for k in range((size // base).bit_length())]  # 28: [7, 14, 28]


def stage_widths(sides: list[int], channels: int, taper: bool) -> list[int]:
    """Width of the feature maps at each side: ``channels`` everywhere, or with ``taper`` ``channels``
    at the smallest side, halved each time the side doubles (at least 8), as DCGAN and BigGAN do."""
    smallest = min(sides)
    return [max(8, channels * smallest // side) if taper else channels for side in sides]


def discriminator_sides(size: int) -> list[int]:
    """Output sides of D's blocks: halving (the first block always) to 8 or less, then two more."""
    sides = [size // 2]
    while sides[-1] > 8:
        sides.append(sides[-1] // 2)
    return sides + sides[-1:] * 2  # 28: [14, 7, 7, 7], 32: [16, 8, 8, 8]


@dataclass
class SNGANProjectionConfig(ModelConfig):
    name: str = "sngan_projection"
    family: ClassVar[str] = "gan"
    latent_dim: int = 128
    g_channels: int = 64  # width of G's blocks (SNGAN on CIFAR-10: 256)
    d_channels: int = 64  # width of D's blocks (SNGAN on CIFAR-10: 128)
    conditional: bool = True  # CBN in G and the projection in D; false for unlabelled data
    clusters: bool = False  # condition on the data's k-means clusters instead (data.clusters)
    attention_resolution: int = 0  # feature-map side of a self-attention block in G and D; 0: none
    shared_embedding: bool = False  # BigGAN: one class embedding shared by every CBN of G
    embedding_dim: int = 128  # size of the shared embedding
    hierarchical_latent: bool = False  # BigGAN: a chunk of z into the stem and each block
    taper: bool = False  # widths halve as the side doubles (g/d_channels at the smallest side)
    example_variants: ClassVar[tuple[dict, ...]] = (
        {},
        {"attention_resolution": 16},
        {"shared_embedding": True, "hierarchical_latent": True},
        {"conditional": False},
        {"conditional": False, "clusters": True},
        {"taper": True},
    )
    example_spec: ClassVar[Callable[[SNGANProjectionConfig], Spec | None]] = staticmethod(
        lambda cfg: CLUSTERED_EXAMPLE_SPEC if cfg.clusters else None
    )

    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
        "embedding_dim": at_least(1),
        "attention_resolution": at_least(0, "a feature-map side; 0 turns attention off"),
    }

    def __post_init__(self) -> None:
        if self.attention_resolution and min(self.g_channels, self.d_channels) < 8:
            raise ConfigError(
                "self-attention uses channels/8 queries and keys: set model.g_channels and "
                "model.d_channels to at least 8, or model.attention_resolution=0"
            )
        if self.clusters and self.conditional:
            raise ConfigError(
                "model.clusters=true conditions on clusters instead of classes: set model.conditional=false with it"
            )
        if self.shared_embedding and not (self.conditional or self.clusters):
            raise ConfigError(
                "model.shared_embedding is a class embedding; with model.conditional=false "
                "there are no classes: set shared_embedding=false"
            )
        if self.hierarchical_latent and not self.shared_embedding:
            raise ConfigError(
                "model.hierarchical_latent conditions each block on [its chunk of z, the shared "
                "class embedding] (BigGAN): also set model.shared_embedding=true"
            )


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm with a conditional affine map: BN(x) * (1 + gain(c)) + bias(c).

    With ``num_classes``, c is labels [N] and gain, bias are per-class tables [K, C]; with
    ``cond_dim``, c is a vector [N, cond_dim] mapped linearly (BigGAN's shared embedding).
    Both start at zero (gain 1, bias 0). x: [N, C, H, W] -> [N, C, H, W].
    """

    gain: nn.Embedding | nn.Linear
    bias: nn.Embedding | nn.Linear

    def __init__(self, channels: int, num_classes: int = 0, cond_dim: int = 0) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        if num_classes:
            self.gain, self.bias = nn.Embedding(num_classes, channels), nn.Embedding(num_classes, channels)
        else:
            self.gain, self.bias = nn.Linear(cond_dim, channels, bias=False), nn.Linear(cond_dim, channels, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        return self.bn(x) * (1 + self.gain(cond))[:, :, None, None] + self.bias(cond)[:, :, None, None]


class CondUpBlock(nn.Module):
    """SNGAN's up-block (:class:`~genlab.models.layers.UpBlock`) with batch norms from ``norm``:
    conditional ones take ``cond``, plain ones get None. x: [N, C_in, H, W] -> [N, C_out, 2H, 2W].
    """

    def __init__(self, c_in: int, c_out: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.bn1, self.bn2 = norm(c_in), norm(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    @staticmethod
    def _norm(bn: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        return bn(x) if cond is None else bn(x, cond)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        h = F.interpolate(F.relu(self._norm(self.bn1, x, cond)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self._norm(self.bn2, self.conv1(h), cond)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ProjectionGenerator(Generator):
    """z: [N, latent_dim] (and labels [N] when ``num_classes``) -> images [N, C, S, S] in [-1, 1].

    ``embedding_dim`` > 0 shares one class embedding among the CBNs; ``hierarchical`` then
    feeds z in equal chunks to the stem and each block. With ``cluster_shares`` (one per cluster)
    G is conditioned on clusters: training passes them as labels, and without labels the cluster
    is :meth:`clusters_of` z, so that samples hold each cluster in its share.
    """

    condition_key: str | None = None  # "cluster" when conditioned on clusters: the batch field G and D get
    cluster_shares: Tensor  # [K] float32, a buffer, when conditioned on clusters

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        channels: int,
        num_classes: int = 0,
        attention_side: int = 0,
        embedding_dim: int = 0,
        hierarchical: bool = False,
        taper: bool = False,
        cluster_shares: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.num_classes = tuple(image_shape), latent_dim, num_classes
        if cluster_shares:
            self.condition_key = "cluster"
            self.register_buffer("cluster_shares", torch.tensor(cluster_shares, dtype=torch.float32))
        tables = num_classes or len(cluster_shares)  # rows of the class (or cluster) tables
        self.conditioned = tables > 0
        sides = generator_sides(image_shape[-1])
        self.base, self.hierarchical = sides[0], hierarchical
        self.chunk = latent_dim // len(sides) if hierarchical else latent_dim  # the part of z the stem reads
        self.shared = nn.Embedding(tables, embedding_dim) if tables and embedding_dim else None
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d
        if self.shared is not None:
            # BigGAN's orthogonal init: distinct classes of unit norm. nn.Embedding's N(0, 1)
            # rows (norm ~sqrt(dim)) let the CBN maps swing the gains ~10x faster: on MNIST 4
            # of 10 digits came out as blank images at 60 and 100 kimg; none did with this.
            nn.init.orthogonal_(self.shared.weight)
            norm = partial(ConditionalBatchNorm2d, cond_dim=embedding_dim + (self.chunk if hierarchical else 0))
        elif tables:
            norm = partial(ConditionalBatchNorm2d, num_classes=tables)
        widths = stage_widths(sides, channels, taper)
        self.stem = nn.Linear(self.chunk, widths[0] * self.base**2)
        self.blocks = nn.ModuleList(CondUpBlock(c_in, c_out, norm) for c_in, c_out in pairwise(widths))
        # Stage 0 is the stem's output, stage k the k-th block's; -1: no attention.
        self.attention_stage = sides.index(attention_side) if attention_side else -1
        self.attention = SelfAttention(widths[self.attention_stage]) if attention_side else None
        self.head = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(), nn.Conv2d(widths[-1], image_shape[0], 3, 1, 1), nn.Tanh()
        )

    def _conditions(self, z: Tensor, labels: Tensor | None) -> tuple[Tensor, list[Tensor | None]]:
        """The stem's latent [N, chunk] and each block's condition: None (unconditional), the labels
        [N] (per-class tables) or a vector [N, cond_dim] ([chunk of z,] shared embedding)."""
        n_blocks = len(self.blocks)
        if not self.conditioned:
            return z, [None] * n_blocks
        if labels is None and self.condition_key == "cluster":
            labels = self.clusters_of(z)
        if labels is None:
            raise ConfigError("this generator is class-conditional: call it with labels [N]")
        if self.shared is None:
            return z, [labels] * n_blocks
        embedding = self.shared(labels)
        if not self.hierarchical:
            return z, [embedding] * n_blocks
        stem, *chunks = z.split(self.chunk, dim=1)
        return stem, [torch.cat([chunk, embedding], dim=1) for chunk in chunks]

    def clusters_of(self, z: Tensor) -> Tensor:
        """The cluster [N] of each latent: Phi(z[:, 0]), uniform in (0, 1) under the prior, cut at the
        shares' cumulative sums (inverse transform sampling). A truncated z narrows it to the middle clusters."""
        shares = self.cluster_shares.double()
        u = torch.special.ndtr(z[:, 0].double()) * shares.sum()
        return torch.searchsorted(shares.cumsum(0), u, right=True).clamp(max=len(shares) - 1)

    def _attend(self, h: Tensor, stage: int) -> Tensor:
        # attention_stage is -1, no stage, without an attention block
        return self.attention(h) if stage == self.attention_stage and self.attention is not None else h

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        stem_z, conds = self._conditions(z, labels)
        h = self._attend(self.stem(stem_z).view(z.shape[0], -1, self.base, self.base), 0)
        for stage, (block, cond) in enumerate(zip(self.blocks, conds, strict=False), start=1):
            h = self._attend(block(h, cond), stage)
        return self.head(h)


class ProjectionDiscriminator(nn.Module):
    """x: [N, C, S, S] in [-1, 1] (and labels [N] when ``num_classes``: classes or clusters) -> logits [N]."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int,
        num_classes: int = 0,
        attention_side: int = 0,
        taper: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        sides = discriminator_sides(image_shape[-1])
        widths = stage_widths(sides, channels, taper)
        blocks: list[nn.Module] = []
        c_in, side_in = image_shape[0], image_shape[-1]
        for i, (side, width) in enumerate(zip(sides, widths, strict=True)):
            blocks.append(DownBlock(c_in, width, down=side < side_in, first=i == 0))
            if side == attention_side and i == sides.index(side):
                blocks.append(SelfAttention(width, sn=True))
            c_in, side_in = width, side
        self.blocks = nn.Sequential(*blocks)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c_in)) if num_classes else None

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.blocks(x).relu().sum(dim=(2, 3))  # global sum pooling: [N, channels]
        logits = self.linear(h).squeeze(1)
        if self.embed is None:
            return logits
        if labels is None:
            raise ConfigError("this discriminator is class-conditional: call it with labels [N]")
        return logits + (self.embed(labels) * h).sum(dim=1)  # the projection <embed(y), h>


def _check_for_size(cfg: SNGANProjectionConfig, size: int) -> None:
    """Options that depend on the image size: the attention side and the latent's chunks."""
    if cfg.attention_resolution:
        shared = sorted(set(generator_sides(size)) & set(discriminator_sides(size)))
        if cfg.attention_resolution not in shared:
            raise ConfigError(
                f"model.attention_resolution={cfg.attention_resolution}: at {size} px no G and D "
                f"feature maps have that side; use one of {shared}, or 0 for no attention"
            )
    chunks = len(generator_sides(size))
    if cfg.hierarchical_latent and cfg.latent_dim % chunks:
        raise ConfigError(
            f"model.hierarchical_latent splits model.latent_dim={cfg.latent_dim} into {chunks} equal "
            f"chunks at {size} px (the stem and {chunks - 1} blocks): set latent_dim to a multiple "
            f"of {chunks}, e.g. {cfg.latent_dim - cfg.latent_dim % chunks or chunks}"
        )


@register_model("sngan_projection", SNGANProjectionConfig)
def build_sngan_projection(cfg: SNGANProjectionConfig, spec: Spec) -> dict:
    shape = image_field(spec, "sngan_projection", sorted(_BASE_SIDE)).shape
    k = num_classes_for(spec, "sngan_projection", cfg.conditional)
    shares = cluster_shares_for(spec, "sngan_projection", cfg.clusters)
    _check_for_size(cfg, shape[-1])
    embedding_dim = cfg.embedding_dim if cfg.shared_embedding else 0
    return {
        "G": lambda: ProjectionGenerator(
            shape,
            cfg.latent_dim,
            cfg.g_channels,
            k,
            cfg.attention_resolution,
            embedding_dim,
            cfg.hierarchical_latent,
            cfg.taper,
            shares,
        ),
        "D": lambda: ProjectionDiscriminator(
            shape, cfg.d_channels, k or len(shares), cfg.attention_resolution, cfg.taper
        ),
    }
