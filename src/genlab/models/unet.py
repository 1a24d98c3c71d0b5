"""The denoising U-Net of diffusion and flow-matching models (Ho et al. 2020, after PixelCNN++ and
Wide ResNets), small enough for a CPU.

As in DDPM: residual blocks with group norm and SiLU, the time step added to every block through a
sinusoidal embedding and an MLP, self-attention at chosen resolutions and in the middle, skip
connections from every down block to its up block, and the output convolution started at zero.
Differences: fewer and narrower levels (the widths are ``channels * channel_mult``), 8 or fewer
groups per norm instead of 32 (widths start at 32 here), and the time is a continuous t in [0, 1]
(a DDPM's step index over its number of steps), embedded as t * 1000 so DDPM's frequencies carry over.
A conditional net adds an embedding of its condition to the time's (as ADM, Dhariwal & Nichol 2021,
for classes; GLIDE, Nichol et al. 2022, and Imagen, Saharia et al. 2022, for a caption's pooled
embedding), with a "no condition" of its own, the unconditional model that classifier-free
guidance needs (Ho & Salimans 2022): an extra class row, or the empty caption.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.models.text_embedding import TextEncoder


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


class ClassCondition(nn.Module):
    """Class labels [N] -> embeddings [N, dim]; the label ``num_classes`` is "no class"."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: Tensor) -> Tensor:
        return self.table(labels)

    def dropped(self, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """``labels`` with the rows ``drop`` [N] bool (all without it) replaced by "no class"."""
        none = torch.full_like(labels, self.num_classes)
        return none if drop is None else torch.where(drop, none, labels)


class TextCondition(nn.Module):
    """Captions [N, L] (word indices, 0 = padding) -> embeddings [N, dim]: the sentence embedding of a
    :class:`TextEncoder` through a linear map. The empty caption (all padding) is "no caption", whose
    embedding is learned apart (a sentence embedding of no words would be the zero vector for any net)."""

    def __init__(self, vocabulary_size: int, text_dim: int, dim: int) -> None:
        super().__init__()
        self.text = TextEncoder(vocabulary_size, text_dim)
        self.project = nn.Linear(text_dim, dim)
        self.empty = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: Tensor) -> Tensor:
        empty = (tokens == 0).all(dim=1, keepdim=True)
        return torch.where(empty, self.empty.to(tokens.device), self.project(self.text(tokens)))

    def dropped(self, tokens: Tensor, drop: Tensor | None = None) -> Tensor:
        """``tokens`` with the rows ``drop`` [N] bool (all without it) replaced by the empty caption."""
        return torch.zeros_like(tokens) if drop is None else tokens.masked_fill(drop[:, None], 0)


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
    """(x_t: [N, C, S, S], t: [N] in [0, 1], condition or None) -> [N, C, S, S], the prediction (noise or
    velocity) of the model that owns it. The condition is class labels [N] (``num_classes`` > 0) or
    captions [N, L] (``vocabulary_size`` > 0); None, or ``condition.dropped(...)``, means none."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int,
        channel_mult: tuple[int, ...],
        blocks_per_level: int,
        attention_resolutions: tuple[int, ...],
        num_classes: int,
        dropout: float,
        vocabulary_size: int = 0,
        text_dim: int = 64,
        coordinates: bool = False,
    ) -> None:
        super().__init__()
        c_img, side = image_shape[0], image_shape[-1]
        # CoordConv (Liu et al. 2018): x and y in [-1, 1] as two more input channels, so that a global
        # condition ("in the upper left") can say where; convolutions alone are translation-equivariant
        self.coordinates: Tensor | None
        if coordinates:
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
            self.register_buffer("coordinates", torch.stack([xs, ys])[None], persistent=False)
        else:
            self.coordinates = None
        self.num_classes, self.channels = num_classes, channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.condition: ClassCondition | TextCondition | None = None
        if num_classes and vocabulary_size:
            raise ValueError("a U-Net is conditioned on classes or on captions, not both")
        if num_classes:
            self.condition = ClassCondition(num_classes, emb_dim)
        elif vocabulary_size:
            self.condition = TextCondition(vocabulary_size, text_dim, emb_dim)
        widths = [channels * m for m in channel_mult]
        sides = [side >> i for i in range(len(widths))]
        self.stem = nn.Conv2d(c_img + (2 if coordinates else 0), channels, 3, padding=1)
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

    def forward(self, x: Tensor, t: Tensor, condition: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(time_embedding(t, self.channels).to(x.dtype))
        if self.condition is not None:
            if condition is None:
                empty = torch.zeros(x.shape[0], 1, dtype=torch.int64, device=x.device)
                condition = self.condition.dropped(empty if isinstance(self.condition, TextCondition) else empty[:, 0])
            emb = emb + self.condition(condition).to(emb.dtype)
        if self.coordinates is not None:
            x = torch.cat([x, self.coordinates.to(x.dtype).expand(x.shape[0], -1, -1, -1)], dim=1)
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
