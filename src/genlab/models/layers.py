"""Blocks shared by the GAN models: a generator base with ``sample``, maxout, initialisers,
spectral-norm wrapping, the residual blocks of SNGAN (Miyato et al. 2018), SAGAN's
self-attention (Zhang et al. 2019) and layers with equalised learning rate (Karras et al. 2018)."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.errors import ConfigError
from genlab.models.protocols import NoiseSampler

Noise = Literal["normal", "uniform"]
SQRT2 = math.sqrt(2.0)  # the gain of leaky ReLU(0.2) layers with equalised learning rate (ProGAN, StyleGAN)


class Generator(NoiseSampler):
    """Base of every GAN generator: ``forward(z: [N, latent_dim]) -> [N, C, H, W] in [-1, 1]``.

    Subclasses set ``latent_dim`` and ``image_shape`` and implement ``forward``; conditional
    ones also set ``num_classes`` and take ``forward(z, labels)``. Provides the
    :class:`~genlab.models.protocols.LatentSampler` capability.
    """

    latent_dim: int
    image_shape: tuple[int, ...]
    noise: Noise = "normal"

    def latents(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        """n latent vectors [n, latent_dim] on this module's device, with unit variance.

        With a ``generator`` (a CPU generator) they are drawn on the CPU and moved, so a seed
        gives the same latents on every device; without one, from the global RNG on the device.
        """
        if self.noise == "uniform":  # U(-sqrt 3, sqrt 3): the 2014 code's unit-variance option
            if truncation is not None:
                raise ConfigError("truncation applies to normal latents; this generator draws uniform noise")
            device = next(self.parameters()).device
            draw_on = torch.device("cpu") if generator is not None else device
            return ((torch.rand(n, self.latent_dim, generator=generator, device=draw_on) * 2 - 1) * 3**0.5).to(device)
        return super().latents(n, generator, truncation)

    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        labels = self.condition(z.shape[0], labels, None)
        return self(z) if labels is None else self(z, labels)


class Maxout(nn.Module):
    """Goodfellow et al. 2013: ``units`` outputs, each the max over ``pieces`` affine maps.

    x: [N, in_features] -> [N, units].
    """

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


class LatentProjection(nn.ConvTranspose2d):
    """DCGAN G's first layer: a stride-1, unpadded transposed convolution from z as a 1x1 map to a
    ``side`` x ``side`` one, computed as the matrix product it is.

    x: [N, C_in, 1, 1] -> [N, C_out, side, side]. The weights, their layout and the state dict are
    ``nn.ConvTranspose2d``'s, and so are the results (to float rounding); larger inputs take its own
    path. Why: oneDNN's transposed convolution of a 1x1 map is slow: 100 -> 128 x 7 x 7 at batch
    64 took 2.7 ms forward and backward in fp32, 2.9 in bf16, against 0.5 and 0.3 ms for this product
    (AVX-512 EPYC, 2 threads).
    """

    def __init__(self, in_channels: int, out_channels: int, side: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, side, 1, 0, bias=bias)

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if x.shape[-2:] != (1, 1) or output_size is not None:
            return super().forward(x, output_size)
        weight = self.weight  # [C_in, C_out, k, k]
        if weight.is_contiguous(memory_format=torch.channels_last):  # memory order [C_in, k, k, C_out]: keep it
            memory_order = weight.permute(0, 2, 3, 1)
            y = (x.flatten(1) @ memory_order.reshape(weight.shape[0], -1)).view(-1, *memory_order.shape[1:])
            y = y.permute(0, 3, 1, 2)
        else:
            y = (x.flatten(1) @ weight.flatten(1)).view(-1, *weight.shape[1:])
        return y if self.bias is None else y + self.bias.to(y.dtype)[:, None, None]


def init_uniform(module: nn.Module, irange: float) -> None:
    """pylearn2's ``irange`` init: weights U(-irange, irange), biases zero."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -irange, irange)
            nn.init.zeros_(m.bias)


def init_dcgan(module: nn.Module) -> None:
    """Radford et al.: conv weights N(0, 0.02), batch-norm scales N(1, 0.02), biases zero."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def maybe_sn(layer: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al.): one power iteration per training forward."""
    return spectral_norm(layer) if enabled else layer


# ------------------------------------------------------------- SNGAN residual blocks


class UpBlock(nn.Module):
    """Generator block: BN-ReLU-upsample-conv3-BN-ReLU-conv3 plus an upsampled 1x1 shortcut.

    x: [N, C_in, H, W] -> [N, C_out, 2H, 2W].
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """Discriminator block: (ReLU)-conv3-ReLU-conv3-(avgpool) plus a 1x1 shortcut, all SN.

    ``first=True`` is SNGAN's "optimised" input block: no ReLU on the raw image, and the
    shortcut pools before its 1x1 conv. x: [N, C_in, H, W] -> [N, C_out, H/2 or H, ...].
    """

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, 1, 1))
        # Identity shortcut when nothing changes shape, as in the reference implementation.
        self.shortcut = spectral_norm(nn.Conv2d(c_in, c_out, 1)) if (down or c_in != c_out) else None

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._pool(self.conv2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        skip = self.shortcut(self._pool(x)) if self.first else self._pool(self.shortcut(x))
        return h + skip


# ------------------------------------------------------------------ SAGAN self-attention


class SelfAttention(nn.Module):
    """Self-attention over positions (SAGAN, Zhang et al. 2019), as in BigGAN's code: 1x1
    convs give queries and keys of C/8 channels and values of C/2, keys and values are
    max-pooled 2x2 (a quarter of the cost), and a 1x1 conv maps the attended values back
    to C channels, added with a learned ``gamma`` that starts at 0, so the block starts as
    the identity. ``sn`` puts spectral norm on every conv (in D). Odd sides pool with
    ceil_mode (7 -> 4) instead of dropping the last row.

    x: [N, C, H, W] -> [N, C, H, W].
    """

    def __init__(self, channels: int, sn: bool = False) -> None:
        super().__init__()
        self.query = maybe_sn(nn.Conv2d(channels, channels // 8, 1, bias=False), sn)
        self.key = maybe_sn(nn.Conv2d(channels, channels // 8, 1, bias=False), sn)
        self.value = maybe_sn(nn.Conv2d(channels, channels // 2, 1, bias=False), sn)
        self.out = maybe_sn(nn.Conv2d(channels // 2, channels, 1, bias=False), sn)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        q = self.query(x).flatten(2)  # [N, C/8, HW]
        k = F.max_pool2d(self.key(x), 2, ceil_mode=True).flatten(2)  # [N, C/8, HW/4]
        v = F.max_pool2d(self.value(x), 2, ceil_mode=True).flatten(2)  # [N, C/2, HW/4]
        attention = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # [N, HW, HW/4]: each position over the pooled ones
        attended = (v @ attention.transpose(1, 2)).view(n, c // 2, h, w)
        return x + self.gamma * self.out(attended)


# ------------------------------------------------------------------- equalised learning rate (ProGAN, StyleGAN)


class EqualLinear(nn.Module):
    """A linear layer with equalised learning rate (Karras et al. 2018): weights drawn N(0, 1/lr_mul^2)
    and scaled at run time by lr_mul / sqrt(fan_in), so Adam's steps are alike for every layer."""

    def __init__(
        self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)) / lr_mul)
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_features), lr_mul, activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activation else out


class EqualConv2d(nn.Module):
    """A convolution with equalised learning rate, 'same' padding, optional bias and leaky ReLU * sqrt 2."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, bias: bool = True, activation: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.padding, self.activation = (
            1 / math.sqrt(in_channels * kernel * kernel),
            kernel // 2,
            activation,
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activation else out


def channel_widths(size: int, channels: int, max_channels: int) -> dict[int, int]:
    """Width per resolution 4..size: ``channels`` at ``size``, doubling towards 4x4, at most ``max_channels``."""
    resolutions = [2**k for k in range(2, size.bit_length())]
    return {r: min(max_channels, channels * (size // r)) for r in resolutions}
