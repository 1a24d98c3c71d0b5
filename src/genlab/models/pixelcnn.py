"""Gated PixelCNN (van den Oord et al., NeurIPS 2016, "Conditional image generation with PixelCNN
decoders"), trained by exact maximum likelihood.

p(x) = prod over pixels in raster order of p(pixel | the pixels before it), and within a pixel over its
channels (R, then G given R, then B given R and G). Each sub-pixel takes one of ``levels`` values:
2 for binarised images, 256 for 8-bit ones; its distribution is a softmax over them.

- Two stacks remove the original PixelCNN's blind spot: a vertical stack sees every row above (its
  convolutions cover the rows up to the current one, and its output is shifted down one row before
  the horizontal stack reads it), a horizontal stack the pixels to the left in the current row (the
  first layer excludes the pixel itself: mask "A"; later ones include it: mask "B").
- Gated activations tanh(W_f * x) * sigmoid(W_g * x), a residual connection in the horizontal stack,
  and for a class-conditional model a learned class embedding added to every gate (the paper's
  V^T h).
- The head reads the features at a pixel and, for the second and third channel, the true values of
  the channels before it (teacher forcing), so that the channel order is exact without the paper's
  channel-split masks.

Sampling runs the stacks once per pixel, on the window of pixels the current one's features depend
on: the rows from ``reach`` + 1 above it to its own, the columns ``reach`` to either side, where
``reach`` is the sum of the layers' kernel half-widths (exact, and on MNIST with six layers 2.4x less
work than the rows up to the current one). The fast PixelCNN's per-layer caches (Ramachandran et al.
2017) would cut the work to one position a layer; not built. A model is a ``LatentSampler`` through
its sampling noise: z ~ N(0, I) of one value per sub-pixel, u = Phi(z), and each sub-pixel is the
inverse CDF of its distribution at u. So ``decode`` is a function of z and the studio's views run, but
z is not a code: nearby z give unrelated images once one pixel flips (``has_latent_code`` is False).

Differences from the paper: the head's channel dependence (above); smaller widths and depths, set in
the config, for a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Classes, Image, Spec, image_field, num_classes_for
from genlab.discrete import categorical_log_prob, inverse_cdf
from genlab.errors import ConfigError
from genlab.models.protocols import NoiseSampler, check_labels
from genlab.registry import register_model


def gate(x: Tensor) -> Tensor:
    """tanh of the first half of the channels times the sigmoid of the second."""
    f, g = x.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


def shift_down(x: Tensor) -> Tensor:
    """Row i gets row i - 1 (row 0 zeros): what the vertical stack hands the horizontal one."""
    return F.pad(x, (0, 0, 1, 0))[:, :, : x.shape[2]]


class VerticalConv(nn.Module):
    """A k x k convolution over the rows up to and including the output's: [N, C_in, H, W] -> [N, C_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(c_in, c_out, (k // 2 + 1, k))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (self.k // 2, self.k // 2, self.k // 2, 0)))


class HorizontalConv(nn.Module):
    """A 1 x k convolution over the pixels to the left in the same row, the pixel itself included unless
    ``mask_a``: [N, C_in, H, W] -> [N, C_out, H, W]."""

    def __init__(self, c_in: int, c_out: int, k: int, mask_a: bool) -> None:
        super().__init__()
        self.k, self.mask_a = k, mask_a
        self.conv = nn.Conv2d(c_in, c_out, (1, k // 2 + (0 if mask_a else 1)))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(F.pad(x, (self.k // 2, 0, 0, 0)))
        return out[..., : x.shape[3]]  # mask A: the extra last column would see the pixel itself


class GatedLayer(nn.Module):
    """One layer of both stacks: (v, h, class embedding or None, conditioning map or None) -> (v, h), each
    [N, channels, H, W]. The map [N, map_channels, H, W] is the paper's location-dependent conditioning
    (V * s): known everywhere in advance (a VQ-VAE-2 bottom prior's top codes), so read without a mask."""

    def __init__(self, c_in: int, channels: int, k: int, first: bool, cond_dim: int, map_channels: int = 0) -> None:
        super().__init__()
        self.first = first
        self.vertical = VerticalConv(c_in, 2 * channels, k)
        self.horizontal = HorizontalConv(c_in, 2 * channels, k, mask_a=first)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Linear(cond_dim, 4 * channels) if cond_dim else None
        self.cond_map = nn.Conv2d(map_channels, 4 * channels, 1) if map_channels else None

    def forward(
        self, v: Tensor, h: Tensor, cond: Tensor | None, cond_map: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        v_feat = self.vertical(v)
        h_feat = self.horizontal(h) + self.v_to_h(shift_down(v_feat))
        if self.cond is not None and cond is not None:
            cv, ch = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
            v_feat, h_feat = v_feat + cv, h_feat + ch
        if self.cond_map is not None and cond_map is not None:
            mv, mh = self.cond_map(cond_map).chunk(2, dim=1)
            v_feat, h_feat = v_feat + mv, h_feat + mh
        h_new = self.h_out(gate(h_feat))
        return gate(v_feat), h_new if self.first else h + h_new


class GatedStack(nn.Module):
    """Both stacks, ``layers`` deep, and a 1x1 projection: inputs [N, c_in, H, W] (and class labels [N], and a
    conditioning map [N, map_channels, H, W]) -> each position's features [N, head_channels, H, W], computed
    from the positions before it in raster order."""

    def __init__(
        self,
        c_in: int,
        channels: int,
        layers: int,
        kernel: int,
        first_kernel: int,
        head_channels: int,
        num_classes: int,
        map_channels: int = 0,
    ) -> None:
        super().__init__()
        cond_dim = channels if num_classes else 0
        self.class_emb = nn.Embedding(num_classes, cond_dim) if num_classes else None
        self.layers = nn.ModuleList(
            GatedLayer(
                c_in if i == 0 else channels,
                channels,
                first_kernel if i == 0 else kernel,
                i == 0,
                cond_dim,
                map_channels,
            )
            for i in range(layers)
        )
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, head_channels, 1), nn.ReLU())

    def forward(self, x: Tensor, labels: Tensor | None, cond_map: Tensor | None = None) -> Tensor:
        cond = self.class_emb(labels) if self.class_emb is not None and labels is not None else None
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, cond, cond_map)
        return self.out(h)


UNSTACKED = (("layers.", "stack.layers."), ("class_emb.", "stack.class_emb."), ("features_out.", "stack.out."))


def _rename_unstacked_keys(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Runs saved before the stacks became a GatedStack (2026-12-05) named their parts at the top level: load
    them under the new names."""
    for old, new in UNSTACKED:
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)


class PixelCNN(NoiseSampler):
    """Images [N, C, H, W] in [-1, 1] -> log p(x) [N] in nats (``logits``: of each sub-pixel given those before it)."""

    has_latent_code = False

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        levels: int,
        channels: int,
        layers: int,
        kernel: int,
        first_kernel: int,
        head_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        c = image_shape[0]
        self.image_shape, self.levels, self.num_classes = tuple(image_shape), levels, num_classes
        self.latent_dim = math.prod(image_shape)
        self.reach = first_kernel // 2 + (layers - 1) * (kernel // 2)  # columns to either side a pixel's features see
        self.stack = GatedStack(c, channels, layers, kernel, first_kernel, head_channels, num_classes)
        self.register_load_state_dict_pre_hook(_rename_unstacked_keys)
        # channel j's head reads the features and the true values of channels 0..j-1 at the same pixel
        self.heads = nn.ModuleList(
            nn.Conv2d(head_channels, levels, 1)
            if j == 0
            else nn.Sequential(
                nn.Conv2d(head_channels + j, head_channels, 1), nn.ReLU(), nn.Conv2d(head_channels, levels, 1)
            )
            for j in range(c)
        )

    def features(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """[N, C, H', W'] -> [N, head_channels, H', W']: each pixel's features from the pixels before it."""
        return self.stack(x, labels)

    def head_logits(self, features: Tensor, x: Tensor, channel: int) -> Tensor:
        """Logits [N, levels, H', W'] of ``channel`` from the features and the channels before it in ``x``."""
        head = self.heads[channel]
        return head(features if channel == 0 else torch.cat([features, x[:, :channel]], dim=1))

    def logits(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """[N, C, levels, H, W]: each sub-pixel's distribution given the sub-pixels before it."""
        f = self.features(x, labels)
        return torch.stack([self.head_logits(f, x, j) for j in range(x.shape[1])], dim=1)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x) [N] in nats, exact: the sum over sub-pixels of the log-softmax at the true value."""
        return categorical_log_prob(self.logits(x, labels), x)

    @torch.no_grad()
    def log_prob(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        return self(x, labels)

    # ----------------------------------------------------------------------------- sampling

    def window(self, i: int, j: int, width: int) -> tuple[slice, slice]:
        """The rows and columns that pixel (i, j)'s features depend on: its receptive field, whose values
        inside the window are exact (the zero padding at the window's edges reaches no further in)."""
        return slice(max(0, i - 1 - self.reach), i + 1), slice(max(0, j - self.reach), min(width, j + self.reach + 1))

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Noise [N, C*H*W] -> images [N, C, H, W], pixel by pixel, each sub-pixel the inverse CDF of its
        distribution at Phi(z)."""
        labels = check_labels(self, z.shape[0], labels, None)
        c, height, width = self.image_shape
        u = torch.special.ndtr(z.float()).reshape(-1, c, height, width)
        x = torch.zeros(z.shape[0], c, height, width, device=z.device)
        scale = 2 / (self.levels - 1)
        for i in range(height):
            for j in range(width):
                rows, columns = self.window(i, j, width)
                f = self.features(x[:, :, rows, columns], labels)
                f = f[:, :, i - rows.start : i - rows.start + 1, j - columns.start : j - columns.start + 1]
                pixel = x[:, :, i : i + 1, j : j + 1]
                for channel in range(c):
                    logits = self.head_logits(f, pixel, channel).flatten(1)  # [N, levels]
                    x[:, channel, i, j] = inverse_cdf(logits, u[:, channel, i, j]).float() * scale - 1
        return x


GREY_EXAMPLE: Spec = {"image": Image(1, 12, 12), "label": Classes(tuple("0123456789"))}
COLOUR_EXAMPLE: Spec = {"image": Image(3, 12, 12)}


@dataclass
class PixelCNNConfig(ModelConfig):
    name: str = "pixelcnn"
    family: ClassVar[str] = "likelihood"
    levels: int = 256  # values per sub-pixel: 2 for binarised data (data.binarize), 256 for 8-bit
    channels: int = 64  # of both stacks
    layers: int = 8  # gated layers (the paper: 15 for MNIST and CIFAR-10)
    kernel: int = 3  # of every layer after the first
    first_kernel: int = 7  # of the first, mask-A layer
    head_channels: int = 64
    conditional: bool = False  # on the data's class labels
    bounds: ClassVar[dict[str, Range]] = {
        "levels": Range(2, 256, note="2 for binarised images, 256 for 8-bit ones"),
        "channels": at_least(1),
        "layers": at_least(1),
        "kernel": at_least(3),
        "first_kernel": at_least(3),
        "head_channels": at_least(1),
    }
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"levels": 4, "channels": 8, "layers": 2, "head_channels": 8},
        {"levels": 2, "channels": 8, "layers": 2, "head_channels": 8, "conditional": True},
    )
    # small images: sampling is a pass per pixel; colour for the unconditional variant (the channel order)
    example_spec: ClassVar[Callable[[PixelCNNConfig], Spec]] = staticmethod(
        lambda cfg: GREY_EXAMPLE if cfg.conditional else COLOUR_EXAMPLE
    )

    def __post_init__(self) -> None:
        for key in ("kernel", "first_kernel"):
            if getattr(self, key) % 2 == 0:
                raise ConfigError(
                    f"model.{key} must be odd (the current pixel sits at its centre); got {getattr(self, key)}"
                )


@register_model("pixelcnn", PixelCNNConfig)
def build_pixelcnn(cfg: PixelCNNConfig, spec: Spec) -> dict:
    shape = image_field(spec, "pixelcnn").shape
    k = num_classes_for(spec, "pixelcnn", cfg.conditional)
    return {
        "model": lambda: PixelCNN(
            shape, cfg.levels, cfg.channels, cfg.layers, cfg.kernel, cfg.first_kernel, cfg.head_channels, k
        )
    }
