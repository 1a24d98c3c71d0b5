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
guidance needs (Ho & Salimans 2022): an extra class row, or the empty caption. A caption can also be
read word by word: cross-attention from the image's positions to the words' states after each
self-attention (LDM, Rombach et al. 2022; Imagen), so that one word ("rotated") is not averaged away
into the sentence's one vector.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.models.text_embedding import TextEncoder

Words = tuple[Tensor, Tensor]  # a caption's word states [N, L, D] and which of them may be read [N, L] bool


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
    embedding is learned apart (a sentence embedding of no words would be the zero vector for any net).
    With ``words``, :meth:`words` also gives each word's state, for cross-attention."""

    def __init__(self, vocabulary_size: int, text_dim: int, dim: int, words: bool = False) -> None:
        super().__init__()
        self.text = TextEncoder(vocabulary_size, text_dim)
        self.project = nn.Linear(text_dim, dim)
        self.empty = nn.Parameter(torch.zeros(dim))
        self.null_word: nn.Parameter | None = None
        if words:
            # A learned null word that every caption has, as imagen-pytorch's null key and value: the empty
            # caption (all padding) still has a word to attend to, and attention may look at none of the
            # caption's. The states are layer-normed, as Imagen norms T5's before its cross-attention.
            self.null_word = nn.Parameter(torch.randn(1, 1, text_dim))
            self.words_norm = nn.LayerNorm(text_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        empty = (tokens == 0).all(dim=1, keepdim=True)
        return torch.where(empty, self.empty.to(tokens.device), self.project(self.text(tokens)))

    def words(self, tokens: Tensor) -> Words:
        """Captions [N, L] -> the null word then each word's encoder state [N, 1 + L, text_dim], normed, and
        which of them cross-attention may read [N, 1 + L] bool (padding may not)."""
        assert self.null_word is not None, "built without words=True"
        states = self.text.states(tokens)
        null = self.null_word.to(states.dtype).expand(states.shape[0], -1, -1)
        mask = torch.cat([torch.ones_like(tokens[:, :1], dtype=torch.bool), tokens != 0], dim=1)
        return self.words_norm(torch.cat([null, states], dim=1)), mask

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


class CrossAttention(nn.Module):
    """Multi-head attention from positions [N, C, H, W] to words [N, L, D] (those the mask [N, L] allows),
    added to its input: the image asks the caption what to draw where."""

    def __init__(self, channels: int, text_dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = math.gcd(heads, channels)
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(text_dim, 2 * channels)
        self.out = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor, words: Words) -> Tensor:
        n, c, h, w = x.shape
        states, mask = words
        q = self.q(self.norm(x)).reshape(n, self.heads, c // self.heads, h * w).transpose(-1, -2)
        kv = self.kv(states.to(x.dtype)).reshape(n, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask[:, None, None, :])
        return x + self.out(attended.transpose(-1, -2).reshape(n, c, h, w))


class Level(nn.Module):
    """The blocks of one resolution, each optionally followed by attention. Going down (``up=False``)
    each block's output is pushed on ``skips``; going up each block first takes the last one off it."""

    def __init__(
        self, widths: list[tuple[int, int]], emb_dim: int, attention: bool, dropout: float, up: bool, text_dim: int = 0
    ) -> None:
        """``text_dim`` > 0: cross-attention to the caption's words after each self-attention."""
        super().__init__()
        self.up = up
        self.blocks = nn.ModuleList(ResBlock(a, b, emb_dim, dropout) for a, b in widths)
        self.attention = nn.ModuleList(Attention(b) if attention else nn.Identity() for _, b in widths)
        self.cross = nn.ModuleList(CrossAttention(b, text_dim) for _, b in widths) if attention and text_dim else None

    def forward(self, h: Tensor, emb: Tensor, skips: list[Tensor], words: Words | None = None) -> Tensor:
        for i, (block, attention) in enumerate(zip(self.blocks, self.attention, strict=True)):
            h = attention(block(torch.cat([h, skips.pop()], dim=1) if self.up else h, emb))
            if self.cross is not None and words is not None:
                h = self.cross[i](h, words)
            if not self.up:
                skips.append(h)
        return h


class UNet(nn.Module):
    """(x_t: [N, C, S, S], t: [N] in [0, 1], condition or None) -> [N, C, S, S], the prediction (noise or
    velocity) of the model that owns it. The condition is class labels [N] (``num_classes`` > 0) or
    captions [N, L] (``vocabulary_size`` > 0); None, or ``condition.dropped(...)``, means none. With
    ``cross_attention`` a caption is also read word by word where the net has self-attention."""

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
        cross_attention: bool = False,
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
        if cross_attention and not vocabulary_size:
            raise ValueError("cross-attention reads a caption's words: it needs vocabulary_size > 0")
        cross_dim = text_dim if cross_attention else 0
        if num_classes:
            self.condition = ClassCondition(num_classes, emb_dim)
        elif vocabulary_size:
            self.condition = TextCondition(vocabulary_size, text_dim, emb_dim, words=cross_attention)
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
            self.down.append(Level(pairs, emb_dim, sides[i] in attention_resolutions, dropout, False, cross_dim))
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
        self.middle = nn.ModuleList([ResBlock(c, c, emb_dim, dropout), Attention(c), ResBlock(c, c, emb_dim, dropout)])
        self.middle_cross = CrossAttention(c, cross_dim) if cross_dim else None
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, width in reversed(list(enumerate(widths))):
            pairs = []
            for _ in range(blocks_per_level + 1):
                pairs.append((c + skips.pop(), width))
                c = width
            self.up.append(Level(pairs, emb_dim, sides[i] in attention_resolutions, dropout, True, cross_dim))
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
        words = None
        if self.middle_cross is not None:
            assert isinstance(self.condition, TextCondition) and condition is not None
            words = self.condition.words(condition)
        if self.coordinates is not None:
            x = torch.cat([x, self.coordinates.to(x.dtype).expand(x.shape[0], -1, -1, -1)], dim=1)
        h = self.stem(x)
        skips = [h]
        for level, down in zip(self.down, self.downsample, strict=True):
            h = level(h, emb, skips, words)
            if not isinstance(down, nn.Identity):
                h = down(h)
                skips.append(h)
        h = self.middle[1](self.middle[0](h, emb))
        if self.middle_cross is not None and words is not None:
            h = self.middle_cross(h, words)
        h = self.middle[2](h, emb)
        for level, up in zip(self.up, self.upsample, strict=True):
            h = level(h, emb, skips, words)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.head(h)
