"""The denoising U-Net of diffusion and flow-matching models (Ho et al. 2020, after PixelCNN++ and
Wide ResNets), small enough for a CPU.

As in DDPM: residual blocks with group norm and SiLU, the time step added to every block through a
sinusoidal embedding and an MLP, self-attention at chosen resolutions and in the middle, skip
connections from every down block to its up block, and the output convolution started at zero.
Differences: fewer and narrower levels (the widths are ``channels * channel_mult``), 8 or fewer
groups per norm instead of 32 (widths start at 32 here), and the time is a continuous t in [0, 1]
(a DDPM's step index over its number of steps), embedded as t * 1000 so DDPM's frequencies carry over.
A conditional net adds a learned embedding of the class to the time's (as ADM, Dhariwal & Nichol
2021), with one extra row for "no class", the unconditional model that classifier-free guidance
needs (Ho & Salimans 2022).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def group_norm(channels: int) -> nn.GroupNorm:
    """Group norm with up to 8 groups (as many as divide ``channels``)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` with zero weights and bias: a residual branch that starts as nothing."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def time_embedding(t: Tensor, dim: int) -> Tensor:
    """Transformer sinusoids of ``1000 t`` (t: [N] in [0, 1]) -> [N, dim], as DDPM embeds its step index."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000 * t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """x: [N, C_in, H, W], emb: [N, E] -> [N, C_out, H, W]; the embedding shifts the first conv's output."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.out_layers = nn.Sequential(  # zero at first: each block starts as the identity (its skip)
            group_norm(c_out), nn.SiLU(), nn.Dropout(dropout), zero_init(nn.Conv2d(c_out, c_out, 3, padding=1))
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over positions, added to its input: [N, C, H, W] -> [N, C, H, W]."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = math.gcd(heads, channels)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2)
        attended = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])  # [N, heads, HW, C/heads]
        return x + self.out(attended.transpose(-1, -2).reshape(n, c, h, w))


class Level(nn.Module):
    """The blocks of one resolution, each optionally followed by attention. Going down (``up=False``)
    each block's output is pushed on ``skips``; going up each block first takes the last one off it."""

    def __init__(self, widths: list[tuple[int, int]], emb_dim: int, attention: bool, dropout: float, up: bool) -> None:
        super().__init__()
        self.up = up
        self.blocks = nn.ModuleList(ResBlock(a, b, emb_dim, dropout) for a, b in widths)
        self.attention = nn.ModuleList(Attention(b) if attention else nn.Identity() for _, b in widths)

    def forward(self, h: Tensor, emb: Tensor, skips: list[Tensor]) -> Tensor:
        for block, attention in zip(self.blocks, self.attention, strict=True):
            h = attention(block(torch.cat([h, skips.pop()], dim=1) if self.up else h, emb))
            if not self.up:
                skips.append(h)
        return h


class UNet(nn.Module):
    """(x_t: [N, C, S, S], t: [N] in [0, 1], labels: [N] int64 or None) -> [N, C, S, S], the prediction
    (noise or velocity) of the model that owns it. ``labels`` equal to ``num_classes`` mean "no class"."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int,
        channel_mult: tuple[int, ...],
        blocks_per_level: int,
        attention_resolutions: tuple[int, ...],
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        c_img, side = image_shape[0], image_shape[-1]
        self.num_classes, self.channels = num_classes, channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        widths = [channels * m for m in channel_mult]
        sides = [side >> i for i in range(len(widths))]
        self.stem = nn.Conv2d(c_img, channels, 3, padding=1)
        skips, c = [channels], channels
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, width in enumerate(widths):
            pairs = []
            for _ in range(blocks_per_level):
                pairs.append((c, width))
                c = width
                skips.append(c)
            self.down.append(Level(pairs, emb_dim, sides[i] in attention_resolutions, dropout, up=False))
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.middle = nn.ModuleList([ResBlock(c, c, emb_dim, dropout), Attention(c), ResBlock(c, c, emb_dim, dropout)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            pairs = []
            for _ in range(blocks_per_level + 1):
                pairs.append((c + skips.pop(), width))
                c = width
            self.up.append(Level(pairs, emb_dim, sides[i] in attention_resolutions, dropout, up=True))
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if i else nn.Identity())
        # zero at first: the first prediction is 0 everywhere
        self.head = nn.Sequential(group_norm(c), nn.SiLU(), zero_init(nn.Conv2d(c, c_img, 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(time_embedding(t, self.channels).to(x.dtype))
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, device=x.device)
            emb = emb + self.class_emb(labels)
        h = self.stem(x)
        skips = [h]
        for level, down in zip(self.down, self.downsample, strict=True):
            h = level(h, emb, skips)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.middle[2](self.middle[1](self.middle[0](h, emb)), emb)
        for level, up in zip(self.up, self.upsample, strict=True):
            h = level(h, emb, skips)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.head(h)
