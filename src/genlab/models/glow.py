"""Glow (Kingma & Dhariwal, NeurIPS 2018), a normalizing flow: an invertible network from images to a
standard normal, so log p(x) follows exactly from the change of variables.

- Multi-scale (RealNVP, Dinh et al. 2017): each level squeezes 2x2 pixels into channels, runs
  ``steps`` flow steps, then factors out half of its channels as latents (the last level keeps all).
- A flow step: actnorm (a per-channel scale and bias, set from the first batch of data so that its
  outputs have zero mean and unit variance), an invertible 1x1 convolution (a learned channel
  mixing, initialised as a random rotation), and an affine coupling (half the channels scaled and
  shifted by a small CNN of the other half, its last layer started at zero so each step starts as
  the identity; the scale a sigmoid, as in Glow's code).
- Dequantisation: 8-bit images become y = (value + u) / 256 - 1/2 with u ~ U[0, 1) per sub-pixel;
  log P(x) >= E_u[log p(y)] - D log 256 bounds the probability of the discrete image, and is what
  ``log_prob`` returns (one u per sub-pixel, drawn from a generator seeded by the image's bytes, so
  an image always gets the same value).

It is an ``Encoder`` (the forward pass, a point), a ``LatentSampler`` (the inverse of normal noise;
``latent_dim`` = C*H*W) and an ``ExactLikelihood``, so the latent tools and the nll metric take it.

Differences from Glow: the factored-out halves are standard normal (RealNVP's), not given a learned
prior conditioned on the kept half; the 1x1 convolution's log-determinant is computed directly, not
through an LU decomposition (the channel counts here are at most 48); no class conditioning.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Spec, TensorDataset, image_field, sample_field
from genlab.errors import ConfigError
from genlab.gaussians import LOG_2PI
from genlab.images import to_model
from genlab.models.protocols import NoiseSampler
from genlab.registry import register_model

POINT_LOGVAR = -30.0  # an exact inverse's "posterior" is a point
BINS = 256  # 8-bit data
INIT_BATCH = 512  # images that set actnorm's initial scale and bias


def squeeze(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [N, 4C, H/2, W/2]: each 2x2 block of pixels becomes four channels."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """The inverse of :func:`squeeze`."""
    n, c, h, w = x.shape
    return x.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """y = (x + bias) * exp(log_scale) per channel; log|det| = H W sum(log_scale)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """Zero mean and unit variance per channel on ``x`` (Glow's data-dependent initialisation)."""
        self.bias.copy_(-x.mean(dim=(0, 2, 3), keepdim=True))
        self.log_scale.copy_(-x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6).log())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return (x + self.bias) * self.log_scale.exp(), self.log_scale.sum() * x.shape[2] * x.shape[3]

    def inverse(self, y: Tensor) -> Tensor:
        return y * (-self.log_scale).exp() - self.bias


class InvertibleConv(nn.Module):
    """y = W x at every pixel (a 1x1 convolution); log|det| = H W log|det W|."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(channels, channels))[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = torch.linalg.slogdet(self.weight.double())[1].to(x.dtype) * x.shape[2] * x.shape[3]
        return F.conv2d(x, self.weight.to(x.dtype)[:, :, None, None]), logdet

    def inverse(self, y: Tensor) -> Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight.double()).to(y.dtype)[:, :, None, None])


class AffineCoupling(nn.Module):
    """The second half of the channels scaled and shifted by a CNN of the first: y_b = (x_b + t) * s."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        half = channels // 2
        last = nn.Conv2d(hidden, 2 * (channels - half), 3, padding=1)
        with torch.no_grad():
            for parameter in last.parameters():  # the step starts as the identity
                parameter.zero_()
        self.net = nn.Sequential(
            nn.Conv2d(half, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last
        )
        self.split = half

    def _scale_shift(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = self.net(x_a).chunk(2, dim=1)
        return torch.sigmoid(raw + 2.0), t  # starts near 0.88: Glow's code, steadier than exp

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._scale_shift(x_a)
        return torch.cat([x_a, (x_b + t) * s], dim=1), s.log().flatten(1).sum(dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.split], y[:, self.split :]
        s, t = self._scale_shift(y_a)
        return torch.cat([y_a, y_b / s - t], dim=1)


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 convolution -> affine coupling."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.actnorm, self.conv, self.coupling = (
            ActNorm(channels),
            InvertibleConv(channels),
            AffineCoupling(channels, hidden),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x, a = self.actnorm(x)
        x, b = self.conv(x)
        x, c = self.coupling(x)
        return x, a + b + c

    def inverse(self, y: Tensor) -> Tensor:
        return self.actnorm.inverse(self.conv.inverse(self.coupling.inverse(y)))


class Level(nn.Module):
    """``steps`` flow steps at one scale."""

    def __init__(self, channels: int, steps: int, hidden: int) -> None:
        super().__init__()
        self.steps = nn.ModuleList(FlowStep(channels, hidden) for _ in range(steps))

    def _steps(self) -> list[FlowStep]:
        return [cast(FlowStep, step) for step in self.steps]

    def forward(self, x: Tensor, initialise: bool = False) -> tuple[Tensor, Tensor]:
        """x -> (y, log|det| [N]); ``initialise`` sets each actnorm from what reaches it first."""
        total = torch.zeros(x.shape[0], device=x.device)
        for step in self._steps():
            if initialise:
                step.actnorm.initialise(x)
            x, logdet = step(x)
            total = total + logdet
        return x, total

    def inverse(self, y: Tensor) -> Tensor:
        for step in reversed(self._steps()):
            y = step.inverse(y)
        return y


class Glow(NoiseSampler):
    """Images [N, C, H, W] in [-1, 1] <-> latents [N, C*H*W]; ``log_prob`` in nats of the 8-bit image."""

    has_latent_code = True

    def __init__(self, image_shape: tuple[int, int, int], levels: int, steps: int, hidden: int) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 2**levels or w % 2**levels:
            raise ConfigError(f"glow with {levels} levels needs sides divisible by {2**levels}; the images are {h}x{w}")
        self.image_shape = tuple(image_shape)
        self.latent_dim = c * h * w
        self.levels = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []  # of each level's factored-out latents (the last: all)
        for level in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.levels.append(Level(c, steps, hidden))
            out = c if level == levels - 1 else c // 2
            self.shapes.append((out, h, w))
            c -= 0 if level == levels - 1 else out

    # ----------------------------------------------------------------------------- the bijection

    def flow(self, y: Tensor, initialise: bool = False) -> tuple[Tensor, Tensor]:
        """Dequantised images y [N, C, H, W] -> (latents [N, D], log|det dz/dy| [N])."""
        latents, logdet = [], torch.zeros(y.shape[0], device=y.device)
        h = y
        for level, shape in zip(self.levels, self.shapes, strict=True):
            h, level_logdet = level(squeeze(h), initialise)
            logdet = logdet + level_logdet
            latents.append(h[:, : shape[0]].flatten(1))
            h = h[:, shape[0] :]
        return torch.cat(latents, dim=1), logdet

    def inverse(self, z: Tensor) -> Tensor:
        """Latents [N, D] -> dequantised images y [N, C, H, W]."""
        sizes = [math.prod(s) for s in self.shapes]
        parts = list(z.split(sizes, dim=1))
        h: Tensor | None = None
        for level, shape, part in reversed(list(zip(self.levels, self.shapes, parts, strict=True))):
            out = part.reshape(-1, *shape)
            h = unsqueeze(level.inverse(out if h is None else torch.cat([out, h], dim=1)))
        assert h is not None
        return h

    # ----------------------------------------------------------------------------- data <-> y

    @staticmethod
    def dequantise(x: Tensor, noise: Tensor) -> Tensor:
        """Images in [-1, 1] (8-bit values) and noise U[0, 1) -> y in [-1/2, 1/2)."""
        values = ((x.float() + 1) * 127.5).round()
        return (values + noise) / BINS - 0.5

    def noise_for(self, x: Tensor) -> Tensor:
        """Dequantisation noise for each image from a generator seeded by its bytes (the same image always
        gets the same noise, in any batch)."""
        rows = ((x.detach().float().cpu() + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()
        noise = [
            torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(zlib.crc32(r.tobytes()))) for r in rows
        ]
        return torch.stack(noise).to(x.device)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The training objective: the dequantised bound on log P(x) [N] in nats with fresh noise from
        the global RNG (which the loop seeds and checkpoints), drawn in logical order."""
        return self.dequantised_log_prob(x, torch.rand(x.shape, device=x.device))

    def dequantised_log_prob(self, x: Tensor, noise: Tensor) -> Tensor:
        """log p(y) - D log 256 [N] in nats for y = dequantise(x, noise)."""
        z, logdet = self.flow(self.dequantise(x, noise))
        log_pz = -0.5 * (z.float() ** 2 + LOG_2PI).sum(dim=1)
        return log_pz + logdet - self.latent_dim * math.log(BINS)

    @torch.no_grad()
    def log_prob(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """The dequantised bound on log P(x) [N] in nats, one noise draw per image (see the module doc)."""
        return self.dequantised_log_prob(x, self.noise_for(x))

    @torch.no_grad()
    def init_from_data(self, data: TensorDataset) -> None:
        """Before a new run trains: each actnorm from what the first INIT_BATCH training images bring it."""
        images = to_model(data.fields[sample_field(data.spec)][:INIT_BATCH]).to(next(self.parameters()).device)
        self.flow(self.dequantise(images, self.noise_for(images)), initialise=True)

    # ----------------------------------------------------------------------------- protocols

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Latents -> 8-bit images in [-1, 1]: y's bin (the inverse of dequantisation)."""
        self.condition(z.shape[0], labels, None)  # refuses labels
        values = ((self.inverse(z) + 0.5) * BINS).floor().clamp(0, BINS - 1)
        return values / 127.5 - 1

    @torch.no_grad()
    def encode(self, x: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Images -> (their latents, a point's log-variance): the flow at the bin centres (u = 1/2)."""
        z, _ = self.flow(self.dequantise(x, torch.full_like(x, 0.5)))
        return z, torch.full_like(z, POINT_LOGVAR)


@dataclass
class GlowConfig(ModelConfig):
    name: str = "glow"
    family: ClassVar[str] = "likelihood"
    levels: int = 2  # each halves the side (squeeze) and, but for the last, factors out half its channels
    steps: int = 8  # flow steps per level (Glow: 32)
    hidden: int = 128  # the coupling CNN's width (Glow: 512)
    bounds: ClassVar[dict[str, Range]] = {"levels": at_least(1), "steps": at_least(1), "hidden": at_least(1)}
    example_variants: ClassVar[tuple[dict, ...]] = ({"levels": 2, "steps": 2, "hidden": 8},)


@register_model("glow", GlowConfig)
def build_glow(cfg: GlowConfig, spec: Spec) -> dict:
    shape = image_field(spec, "glow").shape
    return {"model": lambda: Glow(shape, cfg.levels, cfg.steps, cfg.hidden)}
