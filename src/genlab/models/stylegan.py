"""A style-based generator (Karras et al., CVPR 2019) in its StyleGAN2 form (Karras et al., CVPR 2020),
with the StyleGAN2 residual discriminator, at 16 to 256 pixels.

- Mapping network: z -> w, 8 fully connected layers (``mapping_layers``) after pixel norm, at
  a 100x lower learning rate (equalised learning rate with lr_mul 0.01).
- Synthesis network: a learned 4x4 constant, then per resolution an upsampling (bilinear)
  3x3 modulated convolution with demodulation, a second one, and a 1x1 toRGB layer whose
  outputs are upsampled and summed (the "skip" generator). Every layer adds per-pixel noise
  scaled by a learned per-layer strength, and each layer reads its own w (``num_ws`` of them),
  so that styles can be mixed: ``mix(z_a, z_b, crossover)`` gives layers before ``crossover``
  z_a's w, the rest z_b's. In training, mixing regularisation does that with probability
  ``mixing_prob`` at a random crossover.
- Truncation in W: ``w_avg`` tracks the mean w during training (moving average, as in the
  paper's code); ``truncate(w, psi)`` is w_avg + psi (w - w_avg).
- Noise: fresh per call in training; in eval mode a fixed buffer per layer (the paper code's
  noise_mode="const"), so that the same z always decodes to the same image: the latent tools
  and the studio's sliders need that.
- Discriminator: fromRGB, residual blocks with average-pool downsampling (each output
  scaled by 1/sqrt 2), minibatch standard deviation (groups of up to 4), a 3x3 conv and two
  fully connected layers, all with equalised learning rate and leaky ReLU scaled by sqrt 2.

Differences from the paper's code: bilinear interpolation instead of its FIR [1, 3, 3, 1]
filters for up- and downsampling; channel widths are a config (``g_channels`` at the output resolution, doubling
towards 4x4, capped at ``max_channels``) sized for CPUs at 32 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import PROBABILITY, ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, image_field
from genlab.errors import ConfigError
from genlab.models.layers import SQRT2, EqualConv2d, EqualLinear, Generator, channel_widths
from genlab.registry import register_model

SIZES = (16, 32, 64, 128, 256)


# ----------------------------------------------------------------------------- modulated convolution


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True) -> Tensor:
    """StyleGAN2's convolution: ``x`` [N, I, H, W], ``weight`` [O, I, k, k], ``styles`` [N, I] -> [N, O, H, W].

    Each example's weights are scaled by its styles per input channel and, with ``demodulate``,
    renormalised to unit L2 norm per output filter (what instance norm did in StyleGAN). Computed
    the way the paper's code does outside its fused path: scale the inputs, one shared
    convolution, scale the outputs by the demodulation factors, which is exact and, on a CPU,
    far faster than a grouped convolution over per-example weights [N, O, I, k, k].
    """
    out = F.conv2d(x * styles[:, :, None, None], weight, padding=weight.shape[-1] // 2)
    if demodulate:  # 1 / ||w'_o|| with w'_oik = w_oik s_i:  sum_i s_i^2 sum_k w_oik^2
        norms = styles.square() @ weight.square().sum(dim=(2, 3)).T  # [N, O]
        out = out * torch.rsqrt(norms + 1e-8)[:, :, None, None]
    return out


# ----------------------------------------------------------------------------- generator


def upsample(x: Tensor) -> Tensor:
    """2x bilinear upsampling: the paper's code uses its FIR filter [1, 3, 3, 1] instead."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def path_lengths(images: Tensor, ws: Tensor, noise: Tensor) -> Tensor:
    """StyleGAN2's path lengths: per example, ||J_w^T y|| for the synthesis Jacobian J_w at ``ws``
    [N, L, W] (which must require grad) and ``noise`` y ~ N(0, I) / sqrt(H W) shaped like ``images``;
    the norm over W is averaged over the L layers' ws as in the paper's code. -> [N].

    A measure of G's geometry, computed in G's forward so that DDP sees it; the penalty on it
    (against a running mean) is the objective's (``training.regularisers.path_length``)."""
    (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()


class StyleLayer(nn.Module):
    """Upsample (optional), modulated 3x3 conv, per-pixel noise, bias, leaky ReLU * sqrt 2."""

    noise_const: Tensor

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: bool) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)  # styles start at 1: plain convolutions
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.scale, self.up = 1 / math.sqrt(c_in * 9), up
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = upsample(x)
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w))
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device) if self.training else self.noise_const
        x = x + self.noise_strength * noise
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to image channels, without demodulation (StyleGAN2)."""

    def __init__(self, c_in: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.scale = 1 / math.sqrt(c_in)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        out = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=False)
        return out + self.bias[None, :, None, None]


class StyleGenerator(Generator):
    """z [N, latent_dim] -> images [N, C, S, S]: unbounded in training (no tanh, as in the paper), clipped to
    [-1, 1] in eval mode, as the paper's code clips when it writes images."""

    w_avg: Tensor

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        w_dim: int,
        mapping_layers: int,
        channels: int,
        max_channels: int,
        mixing_prob: float,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.w_dim = tuple(image_shape), latent_dim, w_dim
        self.mixing_prob, self.w_avg_beta = mixing_prob, w_avg_beta
        size = image_shape[-1]
        widths = channel_widths(size, channels, max_channels)
        self.mapping_net = nn.Sequential(
            *(
                EqualLinear(latent_dim if i == 0 else w_dim, w_dim, lr_mul=0.01, activation=True)
                for i in range(mapping_layers)
            )
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.const = nn.Parameter(torch.randn(1, widths[4], 4, 4))
        self.convs = nn.ModuleList([StyleLayer(widths[4], widths[4], w_dim, 4, up=False)])
        self.to_rgb = nn.ModuleList([ToRGB(widths[4], image_shape[0], w_dim)])
        for r in list(widths)[1:]:
            self.convs.append(StyleLayer(widths[r // 2], widths[r], w_dim, r, up=True))
            self.convs.append(StyleLayer(widths[r], widths[r], w_dim, r, up=False))
            self.to_rgb.append(ToRGB(widths[r], image_shape[0], w_dim))
        self.num_ws = len(self.convs) + 1  # each conv reads its own w; a toRGB shares the next conv's

    def mapping(self, z: Tensor) -> Tensor:
        """z [N, latent_dim] -> w [N, w_dim], after normalising each z to unit mean square (pixel norm)."""
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.mapping_net(z)

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """Truncation in W: w_avg + psi (w - w_avg); psi = 1 leaves w as it is, 0 gives the mean image."""
        return self.w_avg.lerp(w, psi)

    def skip_outputs(self, ws: Tensor) -> list[Tensor]:
        """ws [N, num_ws, w_dim] -> each resolution's toRGB output, 4x4 first: [N, C, 4, 4], ..., [N, C, S, S]."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0])
        outputs = [self.to_rgb[0](x, ws[:, 1])]
        for block, to_rgb in enumerate(self.to_rgb[1:], start=1):
            first = 2 * block - 1
            x = self.convs[first](x, ws[:, first])
            x = self.convs[first + 1](x, ws[:, first + 1])
            outputs.append(to_rgb(x, ws[:, first + 2]))
        return outputs

    def synthesis(self, ws: Tensor) -> Tensor:
        """ws [N, num_ws, w_dim] -> images [N, C, S, S]: the skip outputs, each upsampled and added to the next."""
        outputs = self.skip_outputs(ws)
        image = outputs[0]
        for output in outputs[1:]:
            image = upsample(image) + output
        return image if self.training else image.clamp(-1, 1)  # D trains on the raw output; samples are images

    def resolution_parts(self, ws: Tensor) -> dict[int, Tensor]:
        """ws -> resolution: what its toRGB adds to the image, upsampled to the output size as ``synthesis``
        does; the parts sum to the unclamped image. StyleGAN2's Figure 8 reads their spread over training."""
        outputs = self.skip_outputs(ws)
        parts = {}
        for k, output in enumerate(outputs):
            for _ in range(len(outputs) - 1 - k):
                output = upsample(output)
            parts[int(outputs[k].shape[-1])] = output
        return parts

    def broadcast(self, w: Tensor) -> Tensor:
        """One w per example [N, w_dim] -> the same w for every layer [N, num_ws, w_dim]."""
        return w[:, None].expand(-1, self.num_ws, -1)

    def mix(self, z_a: Tensor, z_b: Tensor, crossover: int, psi: float = 1.0) -> Tensor:
        """Style mixing: layers before ``crossover`` (0..num_ws) take z_a's w, the rest z_b's."""
        if not 0 <= crossover <= self.num_ws:
            raise ConfigError(f"crossover must be 0..{self.num_ws} for this generator, got {crossover}")
        ws = self.broadcast(self.truncate(self.mapping(z_a), psi)).clone()
        ws[:, crossover:] = self.truncate(self.mapping(z_b), psi)[:, None]
        return self.synthesis(ws)

    def forward(self, z: Tensor, with_path_lengths: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Images; with ``with_path_lengths`` also each image's path length ||J_w^T y|| (StyleGAN2's
        regulariser, :func:`path_lengths`) at its own ws, [N].

        The lengths come out of the forward pass, not a second call through ``mapping`` and
        ``synthesis``, so that under DDP the penalty's gradients go through G's wrapper and are
        all-reduced with the rest.
        """
        w = self.mapping(z)
        if self.training:
            with torch.no_grad():  # w is bf16 under autocast; the running mean stays fp32
                self.w_avg.lerp_(w.detach().mean(0).to(self.w_avg.dtype), 1 - self.w_avg_beta)
        ws = self.broadcast(w)
        if self.training and self.mixing_prob > 0:  # mixing regularisation: decorrelates the layers' styles
            mixed = torch.rand(z.shape[0], device=z.device) < self.mixing_prob
            crossover = int(torch.randint(1, self.num_ws, ()))
            w_other = self.mapping(torch.randn_like(z))
            layers = torch.arange(self.num_ws, device=z.device)[None, :, None] >= crossover
            ws = torch.where(mixed[:, None, None] & layers, w_other[:, None], ws)
        images = self.synthesis(ws)
        if not with_path_lengths:
            return images
        # drawn in logical order (randn_like would follow the layout): channels_last changes no value
        noise = (
            torch.randn(images.shape, dtype=images.dtype, device=images.device)
            / (images.shape[2] * images.shape[3]) ** 0.5
        )
        return images, path_lengths(images, ws, noise)


# ----------------------------------------------------------------------------- discriminator


def minibatch_stddev(x: Tensor, group: int = 4) -> Tensor:
    """Append one feature map: the mean standard deviation of each feature over groups of up to
    ``group`` examples (Karras et al. 2018), so D can see a batch's lack of variety."""
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:
        g -= 1
    y = x.reshape(g, n // g, c, h, w)
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n // g]
    y = y.repeat(g)[:, None, None, None].expand(n, 1, h, w)
    return torch.cat([x, y], dim=1)


class ResidualDownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(c_in, c_in, 3), EqualConv2d(c_in, c_out, 3)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv2(self.conv1(x)), 2)
        return (x + skip) / SQRT2


class StyleDiscriminator(nn.Module):
    """x [N, C, S, S] -> logits [N]."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int, max_channels: int) -> None:
        super().__init__()
        widths = channel_widths(image_shape[-1], channels, max_channels)
        resolutions = sorted(widths, reverse=True)  # S, S/2, ..., 4
        self.from_rgb = EqualConv2d(image_shape[0], widths[resolutions[0]], 1)
        self.blocks = nn.Sequential(*(ResidualDownBlock(widths[r], widths[r // 2]) for r in resolutions[:-1]))
        self.conv = EqualConv2d(widths[4] + 1, widths[4], 3)
        self.fc = EqualLinear(widths[4] * 16, widths[4], activation=True)
        self.out = EqualLinear(widths[4], 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(minibatch_stddev(self.blocks(self.from_rgb(x))))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


# ----------------------------------------------------------------------------- config


@dataclass
class StyleGANConfig(ModelConfig):
    name: str = "stylegan"
    family: ClassVar[str] = "gan"
    latent_dim: int = 128  # z; 512 in the paper
    w_dim: int = 128
    mapping_layers: int = 8
    g_channels: int = 32  # G's width at the output resolution, doubling towards 4x4
    d_channels: int = 32  # D's width at the input resolution, doubling towards 4x4
    max_channels: int = 256  # 512 in the paper
    mixing_prob: float = 0.9  # mixing regularisation (the paper's 0.9); 0 disables
    example_spec: ClassVar[Spec] = {"image": Image(3, 32, 32)}
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"g_channels": 8, "d_channels": 8, "max_channels": 32, "latent_dim": 16, "w_dim": 16, "mapping_layers": 2},
    )
    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "w_dim": at_least(1),
        "mapping_layers": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
        "max_channels": at_least(1),
        "mixing_prob": PROBABILITY,
    }


@register_model("stylegan", StyleGANConfig)
def build_stylegan(cfg: StyleGANConfig, spec: Spec) -> dict:
    shape = image_field(spec, "stylegan", list(SIZES)).shape
    return {
        "G": lambda: StyleGenerator(
            shape, cfg.latent_dim, cfg.w_dim, cfg.mapping_layers, cfg.g_channels, cfg.max_channels, cfg.mixing_prob
        ),
        "D": lambda: StyleDiscriminator(shape, cfg.d_channels, cfg.max_channels),
    }
