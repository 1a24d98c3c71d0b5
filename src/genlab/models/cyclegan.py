"""CycleGAN (Zhu et al., ICCV 2017): two ResNet generators and two PatchGAN discriminators
for unpaired translation between domains A and B, data ``{"a": Image, "b": Image}``.

G_AB maps A to B and G_BA maps B to A; each is the paper's ResNet generator (after
Johnson et al. 2016): c7s1-k, two stride-2 downsampling convolutions (d2k, d4k), ``g_blocks``
residual blocks (R4k: two reflection-padded 3x3 convolutions), two stride-2 transposed
convolutions (u2k, uk) and a c7s1 convolution to the other domain's channels with a tanh;
instance norm and ReLU after every layer but the last (k = ``g_channels``; the paper: 64,
6 blocks at 128 px, 9 at 256). D_A scores images of domain A (real a against G_BA(b)) and
D_B images of domain B, each a PatchGAN of models/pix2pix.py scoring one image (no source
to pair it with), with instance norm as in the authors' code; 70x70 patches by default.

Differences from the paper: small defaults (k = 16, 3 blocks, D width 16) so that CPU runs
are quick; convolutions followed by instance norm have no bias (the norm subtracts the
per-channel mean, so a bias would be cancelled; the authors' code keeps it, to no effect);
the domains may differ in channels (grey <-> colour), where the paper's are both RGB.
In the authors' code D_A judges G_A(A), i.e. domain B; here each D is named for the domain it judges.
Weights N(0, 0.02) as in the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, describe
from genlab.errors import ConfigError
from genlab.models.layers import init_dcgan
from genlab.models.pix2pix import PatchDiscriminator, ReceptiveField
from genlab.models.protocols import eval_mode
from genlab.registry import register_model

DOWNSAMPLINGS = 2  # stride-2 layers in and out of the residual blocks: sides must divide by 4
MIN_SIDE = 24  # the smallest side at which the 70x70 PatchGAN still gives a logit


@dataclass
class CycleGANConfig(ModelConfig):
    name: str = "cyclegan"
    family: ClassVar[str] = "cyclegan"
    g_channels: int = 16  # ngf: width of G's first layer, doubled by each downsampling (paper 64)
    g_blocks: int = 3  # residual blocks of each G (paper: 6 at 128 px, 9 at 256 px)
    d_channels: int = 16  # ndf: D's first width, doubling per stride-2 layer up to 8x (paper 64)
    d_receptive_field: ReceptiveField = 70  # D's patch side in pixels; "image": one logit per image
    example_spec: ClassVar[Spec] = {"a": Image(1, 32, 32), "b": Image(3, 32, 32)}
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"g_channels": 4, "g_blocks": 1, "d_channels": 4},
        {"g_channels": 4, "g_blocks": 2, "d_channels": 4, "d_receptive_field": 16},
    )
    bounds: ClassVar[dict[str, Range]] = {"g_channels": at_least(1), "g_blocks": at_least(0), "d_channels": at_least(1)}


class ResidualBlock(nn.Module):
    """x + F(x), F two reflection-padded 3x3 convolutions with instance norm (ReLU between):
    [N, C, H, W] -> [N, C, H, W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """source: [N, C_s, H, W] in [-1, 1] -> [N, C_t, H, W] in [-1, 1], H and W multiples of 4.

    Deterministic (no dropout, as in the paper). Provides the
    :class:`~genlab.models.protocols.Translator` capability.
    """

    def __init__(
        self, source_shape: tuple[int, int, int], target_shape: tuple[int, int, int], channels: int, blocks: int
    ) -> None:
        super().__init__()
        self.source_shape, self.target_shape = tuple(source_shape), tuple(target_shape)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(source_shape[0], channels, 7, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(),
        ]
        width = channels
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), nn.InstanceNorm2d(2 * width), nn.ReLU()]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(blocks)]
        for _ in range(DOWNSAMPLINGS):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1, bias=False),
                nn.InstanceNorm2d(width // 2),
                nn.ReLU(),
            ]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, target_shape[0], 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, source: Tensor) -> Tensor:
        return self.net(source)

    def translate(self, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Translations [N, *target_shape] of ``source`` [N, *source_shape] in [-1, 1], without
        gradients. G has no noise, so ``generator`` is unused; instance norm uses each image's own
        statistics in train and eval mode alike. The module's mode is restored after."""
        with eval_mode(self):
            conv = self.net[1]  # the first convolution, after the padding
            assert isinstance(conv, nn.Conv2d)
            return self(source.to(conv.weight.device))


def _domain(spec: Spec, key: str) -> Image:
    field = spec.get(key)
    if not isinstance(field, Image):
        raise ConfigError(
            f"cyclegan translates between two image domains, fields 'a' and 'b'; the data has "
            f"{describe(spec)}. Use data.name=unpaired with data.a and data.b"
        )
    return field


@register_model("cyclegan", CycleGANConfig)
def build_cyclegan(cfg: CycleGANConfig, spec: Spec) -> dict:
    a, b = _domain(spec, "a"), _domain(spec, "b")
    side = a.height
    if (a.height, a.width) != (b.height, b.width) or a.height != a.width:
        raise ConfigError(
            f"cyclegan needs square images of one size in both domains; the data has {describe(spec)}. "
            "Set data.a.image_size and data.b.image_size to the same value"
        )
    if side % 2**DOWNSAMPLINGS or side < MIN_SIDE:
        raise ConfigError(
            f"cyclegan's generators need image sides divisible by {2**DOWNSAMPLINGS} and at least "
            f"{MIN_SIDE} pixels; the data's are {side}. Set the domains' image_size (e.g. 28, 32, 128)"
        )
    if cfg.d_receptive_field == "image" and side & (side - 1):
        raise ConfigError(
            f"model.d_receptive_field=image needs a power-of-two image side, the data's is {side}; "
            "use 70 or another image_size"
        )
    return {
        "G_AB": lambda: ResnetGenerator(a.shape, b.shape, cfg.g_channels, cfg.g_blocks),
        "G_BA": lambda: ResnetGenerator(b.shape, a.shape, cfg.g_channels, cfg.g_blocks),
        "D_A": lambda: PatchDiscriminator(a.channels, side, cfg.d_channels, cfg.d_receptive_field, norm="instance"),
        "D_B": lambda: PatchDiscriminator(b.channels, side, cfg.d_channels, cfg.d_receptive_field, norm="instance"),
    }
