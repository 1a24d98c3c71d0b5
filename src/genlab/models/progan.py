"""Progressive growing of GANs (Karras et al., ICLR 2018): G and D start at 4x4 and grow to the data's
resolution, each new block faded in over ``stage_kimg``, then trained alone for ``stage_kimg``.

- The stage is a pure function of the images seen (:func:`growth`), which the loop hands to every
  :class:`~genlab.models.protocols.Staged` module before each iteration. Each module keeps
  the count in a buffer, so a checkpoint (and the export) restores the stage and the fade
  exactly, mid-fade included.
- G: pixel-normalised z, a dense layer to 4x4, then per stage nearest-neighbour upsampling and
  two 3x3 convolutions, each followed by leaky ReLU and pixel norm; a 1x1 toRGB per stage.
  While a block fades in, the image is (1 - alpha) x the previous stage's toRGB, upsampled,
  plus alpha x the new one. G's output is always at the data's size (nearest-neighbour
  upsampled from the active resolution), so the data never changes shape.
- D: a 1x1 fromRGB per stage, blocks of two 3x3 convolutions and average pooling, minibatch
  standard deviation, a 3x3 convolution and two dense layers; while a block fades in, its
  output is mixed with the previous stage's fromRGB of the half-size input in the same way.
- Every layer has equalised learning rate (``EqualConv2d``, ``EqualLinear``).

Differences from the paper: D sees every input (real or fake) through the same operator, the
data's size average-pooled to the active resolution and, during a fade, blended with its
half-resolution version (the paper blends only the reals, in the data pipeline); the batch
size stays constant; the loss is the GAN objective's (the paper used WGAN-GP with a drift term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import POSITIVE, ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, image_field
from genlab.models.layers import EqualConv2d, EqualLinear, Generator, channel_widths
from genlab.models.stylegan import minibatch_stddev
from genlab.registry import register_model

SIZES = (8, 16, 32, 64, 128, 256)


def growth(images_seen: int, stage_images: int, stages: int) -> tuple[int, float]:
    """(active stage, fade-in alpha): stage 0 (4x4) trains alone for ``stage_images``; every later
    stage fades in over ``stage_images`` (alpha 0 -> 1), then trains alone as long; the last one stays.
    ``stage_images`` 0 means no growing: the last stage from the start (the paper's control)."""
    if stage_images == 0:
        return stages - 1, 1.0
    t = images_seen / stage_images
    if t < 1:
        return 0, 1.0
    stage, within = divmod(t - 1, 2.0)
    stage = int(stage) + 1
    if stage >= stages:
        return stages - 1, 1.0
    return stage, min(within, 1.0)


def pixel_norm(x: Tensor) -> Tensor:
    """Each position's feature vector scaled to unit mean square (ProGAN's G normalisation)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class _Growing(nn.Module):
    """The stage bookkeeping shared by G and D."""

    images_seen: Tensor

    def _init_growth(self, size: int, stage_images: int) -> None:
        self.resolutions = [2**k for k in range(2, size.bit_length())]  # 4, 8, ..., size
        self.stage_images = stage_images
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.int64))

    def set_progress(self, images_seen: int) -> None:
        self.images_seen.fill_(images_seen)

    @property
    def stage(self) -> tuple[int, float]:
        return growth(int(self.images_seen), self.stage_images, len(self.resolutions))


class ProGANGenerator(Generator, _Growing):
    """z [N, latent_dim] -> images [N, C, S, S]; unbounded in training, clipped to [-1, 1] in eval mode."""

    def __init__(
        self, image_shape: tuple[int, int, int], latent_dim: int, channels: int, max_channels: int, stage_images: int
    ) -> None:
        super().__init__()
        self.image_shape, self.latent_dim = tuple(image_shape), latent_dim
        self._init_growth(image_shape[-1], stage_images)
        widths = channel_widths(image_shape[-1], channels, max_channels)
        self.dense = EqualLinear(latent_dim, widths[4] * 16, activation=True)
        self.first = EqualConv2d(widths[4], widths[4], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualConv2d(widths[r // 2], widths[r], 3), EqualConv2d(widths[r], widths[r], 3)])
            for r in self.resolutions[1:]
        )
        self.to_rgb = nn.ModuleList(
            EqualConv2d(widths[r], image_shape[0], 1, activation=False) for r in self.resolutions
        )

    def forward(self, z: Tensor) -> Tensor:
        stage, alpha = self.stage
        x = pixel_norm(self.dense(pixel_norm(z)).view(z.shape[0], -1, 4, 4))
        x = previous = pixel_norm(self.first(x))
        for block in self.blocks[:stage]:
            previous = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            for conv in cast(nn.ModuleList, block):
                x = pixel_norm(conv(x))
        image = self.to_rgb[stage](x)
        if stage > 0 and alpha < 1:
            image = F.interpolate(self.to_rgb[stage - 1](previous), scale_factor=2, mode="nearest").lerp(image, alpha)
        image = F.interpolate(image, size=self.image_shape[1:], mode="nearest")
        return image if self.training else image.clamp(-1, 1)


class ProGANDiscriminator(_Growing):
    """x [N, C, S, S] -> logits [N], looking at the active resolution only."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int, max_channels: int, stage_images: int) -> None:
        super().__init__()
        self._init_growth(image_shape[-1], stage_images)
        widths = channel_widths(image_shape[-1], channels, max_channels)
        self.from_rgb = nn.ModuleList(EqualConv2d(image_shape[0], widths[r], 1) for r in self.resolutions)
        self.blocks = nn.ModuleList(  # blocks[i - 1] takes resolution i down to i - 1
            nn.Sequential(
                EqualConv2d(widths[r], widths[r], 3), EqualConv2d(widths[r], widths[r // 2], 3), nn.AvgPool2d(2)
            )
            for r in self.resolutions[1:]
        )
        self.final_conv = EqualConv2d(widths[4] + 1, widths[4], 3)
        self.fc = EqualLinear(widths[4] * 16, widths[4], activation=True)
        self.out = EqualLinear(widths[4], 1)

    def forward(self, x: Tensor) -> Tensor:
        stage, alpha = self.stage
        x = F.adaptive_avg_pool2d(x, self.resolutions[stage])
        if stage > 0 and alpha < 1:
            half = F.avg_pool2d(x, 2)
            x = F.interpolate(half, scale_factor=2, mode="nearest").lerp(x, alpha)
            h = self.from_rgb[stage - 1](half).lerp(self.blocks[stage - 1](self.from_rgb[stage](x)), alpha)
        else:
            h = self.from_rgb[stage](x)
            if stage > 0:
                h = self.blocks[stage - 1](h)
        for block in reversed(self.blocks[: max(stage - 1, 0)]):
            h = block(h)
        h = self.final_conv(minibatch_stddev(h))
        return self.out(self.fc(h.flatten(1))).squeeze(1)


@dataclass
class ProGANConfig(ModelConfig):
    name: str = "progan"
    family: ClassVar[str] = "gan"
    latent_dim: int = 128  # 512 in the paper
    g_channels: int = 32  # widths at the full resolution, doubling towards 4x4
    d_channels: int = 32
    max_channels: int = 256
    stage_kimg: float = 20.0  # images (thousands) of each fade-in, and of each stage alone after it (600 in the paper)
    grow: bool = True  # false: the same nets at the full resolution from the start (the control for growing's claim)
    example_spec: ClassVar[Spec] = {"image": Image(3, 32, 32)}
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"g_channels": 4, "d_channels": 4, "max_channels": 16, "latent_dim": 8, "stage_kimg": 0.001},
        {"g_channels": 4, "d_channels": 4, "max_channels": 16, "latent_dim": 8, "grow": False},
    )
    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
        "max_channels": at_least(1),
        "stage_kimg": POSITIVE,
    }


@register_model("progan", ProGANConfig)
def build_progan(cfg: ProGANConfig, spec: Spec) -> dict:
    shape = image_field(spec, "progan", list(SIZES)).shape
    stage_images = max(1, round(cfg.stage_kimg * 1000)) if cfg.grow else 0
    return {
        "G": lambda: ProGANGenerator(shape, cfg.latent_dim, cfg.g_channels, cfg.max_channels, stage_images),
        "D": lambda: ProGANDiscriminator(shape, cfg.d_channels, cfg.max_channels, stage_images),
    }
