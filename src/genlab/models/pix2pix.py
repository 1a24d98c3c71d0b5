"""pix2pix (Isola et al., CVPR 2017): a U-Net generator and PatchGAN discriminators for
paired image-to-image translation, data ``{"source": Image, "target": Image}``.

G is the paper's U-Net. The encoder halves the image log2(S) times down to a 1x1
bottleneck with conv4-stride-2 layers (C64-C128-C256-C512-C512-...: widths double up to
8 x ``g_channels``), batch norm on every layer but the first, LeakyReLU(0.2). The decoder
mirrors it with transposed conv4-stride-2 layers (batch norm, ReLU), each fed the previous
decoder output concatenated with the encoder output of the same size (the skip
connections), and ends in a tanh. Dropout (``g_dropout``, 0.5) in the first three decoder
layers is G's only noise; as in the paper it stays on at test time.

D scores (source, image) pairs concatenated along channels, as logits ``[N, 1, h, w]``,
one per patch; ``d_receptive_field`` picks its patch size in pixels:

- ``1``: PixelGAN, 1x1 convolutions (C64-C128-1): colour statistics only;
- ``16``: one stride-2 layer (the authors' ``n_layers=1``);
- ``70``: three stride-2 layers (``n_layers=3``), the paper's default;
- ``image``: ImageGAN, stride-2 layers down to 4x4 and a 4x4 conv: one logit per image.

Differences from the paper: the bottleneck has no batch norm (as in the authors' PyTorch
code; at 1x1 with the paper's batch size of 1, batch norm zeroes it); the last decoder
layer maps straight to the target channels (the code's choice; the paper's appendix adds
a convolution after it); dropout is drawn by the model instead of ``nn.Dropout``, so that
:meth:`UNetGenerator.translate` is seedable; and ``translate`` normalises with batch
norm's running statistics, where the paper uses the test batch's own statistics (at batch
size 1, instance normalisation). Dropout sits in the first three decoder layers as in
the paper's appendix; the authors' code starts it one layer further from the bottleneck
and has fewer such layers below 256 px (none at 32). Weights N(0, 0.02) as in both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, image_field
from genlab.errors import ConfigError
from genlab.models.layers import init_dcgan
from genlab.models.protocols import eval_mode
from genlab.registry import register_model

SIZES = [32, 64, 128, 256]  # square sides the U-Net reduces to a 1x1 bottleneck
DROPOUT_LAYERS = 3  # decoder layers (from the bottleneck) with dropout, as in the paper
ReceptiveField = Literal[1, 16, 70, "image"]
Norm = Literal["batch", "instance"]
# D's normalisation: batch norm (pix2pix) or instance norm without affine parameters (CycleGAN's code).
NORMS: dict[str, Callable[[int], nn.Module]] = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}


@dataclass
class Pix2PixConfig(ModelConfig):
    name: str = "pix2pix"
    family: ClassVar[str] = "pix2pix"
    g_channels: int = 64  # ngf: G's first encoder width; doubles per layer up to 8x
    d_channels: int = 64  # ndf: D's first width; doubles per stride-2 layer up to 8x
    d_receptive_field: ReceptiveField = 70  # D's patch side in pixels; "image": one logit per image
    g_dropout: float = 0.5  # in the first three decoder layers, at training and test time; 0 = deterministic G
    example_spec: ClassVar[Spec] = {"source": Image(1, 32, 32), "target": Image(3, 32, 32)}
    example_variants: ClassVar[tuple[dict, ...]] = tuple(
        {"g_channels": 8, "d_channels": 8, "d_receptive_field": rf} for rf in (1, 16, 70, "image")
    )
    bounds: ClassVar[dict[str, Range]] = {
        "g_channels": at_least(1),
        "d_channels": at_least(1),
        "g_dropout": Range(0, 1, high_open=True, note="0: a deterministic G"),
    }


def _widths(channels: int, n: int) -> list[int]:
    return [channels * min(2**i, 8) for i in range(n)]


class UNetGenerator(nn.Module):
    """source: [N, C_s, S, S] in [-1, 1] -> [N, C_t, S, S] in [-1, 1], S a power of two >= 32.

    Provides the :class:`~genlab.models.protocols.Translator` capability.
    """

    def __init__(
        self, source_shape: tuple[int, int, int], target_shape: tuple[int, int, int], channels: int, dropout: float
    ) -> None:
        super().__init__()
        self.source_shape, self.target_shape, self.dropout = tuple(source_shape), tuple(target_shape), dropout
        depth = source_shape[-1].bit_length() - 1  # stride-2 layers down to 1x1
        widths = _widths(channels, depth)
        self.encoder = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip([source_shape[0], *widths], widths, strict=False)):
            norm = 0 < i < depth - 1  # not on the input layer (as in DCGAN) nor on the 1x1 bottleneck
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not norm),
                    *([nn.BatchNorm2d(c_out)] if norm else []),
                    nn.LeakyReLU(0.2),
                )
            )
        self.decoder = nn.ModuleList()  # bottleneck first; every input but the first is doubled by its skip
        for j, c_out in enumerate(reversed(widths[:-1])):
            c_in = widths[-1] if j == 0 else 2 * widths[depth - 1 - j]
            self.decoder.append(
                nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out))
            )
        self.out = nn.ConvTranspose2d(2 * widths[0], target_shape[0], 4, 2, 1)
        init_dcgan(self)

    def forward(self, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Dropout is on in train and eval mode alike; its masks come from ``generator`` when given
        (drawn on the CPU, so a seed gives the same masks on every device), else from the global RNG."""
        skips, h = [], source
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        skips.pop()  # the bottleneck itself feeds the first decoder layer
        for j, layer in enumerate(self.decoder):
            h = layer(h)
            if j < DROPOUT_LAYERS:
                h = self._dropout(h, generator)
            h = torch.cat([F.relu(h), skips.pop()], dim=1)
        return torch.tanh(self.out(h))

    def _dropout(self, h: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.dropout == 0:
            return h
        if generator is None:
            return F.dropout(h, self.dropout, training=True)
        keep = 1.0 - self.dropout
        mask = torch.rand(h.shape, generator=generator) < keep
        return h * mask.to(h.device, h.dtype) / keep

    def translate(self, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Translations [N, C_t, S, S] of ``source`` [N, C_s, S, S] in [-1, 1], without gradients:
        batch norm in eval mode (running statistics), dropout on (the paper's test-time noise),
        its masks from ``generator`` when given. The module's mode is restored after."""
        with eval_mode(self):
            return self(source.to(self.out.weight.device), generator)


def _pixel_layers(c_in: int, ndf: int, norm: Callable[[int], nn.Module]) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, ndf, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, 2 * ndf, 1, bias=False),
        norm(2 * ndf),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * ndf, 1, 1),
    ]


def _patch_layers(c_in: int, ndf: int, n_layers: int, norm: Callable[[int], nn.Module]) -> list[nn.Module]:
    """n_layers conv4-stride-2 layers, a conv4-stride-1 layer and a conv4-stride-1 logit layer:
    a receptive field of 16 (n_layers=1), 34 (2) or 70 (3) pixels."""
    widths = _widths(ndf, n_layers + 1)
    layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
    for i, (a, b) in enumerate(itertools.pairwise(widths), start=1):
        stride = 2 if i < n_layers else 1
        layers += [nn.Conv2d(a, b, 4, stride, 1, bias=False), norm(b), nn.LeakyReLU(0.2)]
    return [*layers, nn.Conv2d(widths[-1], 1, 4, 1, 1)]


def _image_layers(c_in: int, ndf: int, size: int, norm: Callable[[int], nn.Module]) -> list[nn.Module]:
    """conv4-stride-2 layers from S down to 4x4, then a 4x4 conv to one logit (the paper's
    ImageGAN at 256 px: C64-C128-C256-C512-C512-C512)."""
    widths = _widths(ndf, (size // 4).bit_length() - 1)
    layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
    for a, b in itertools.pairwise(widths):
        layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), norm(b), nn.LeakyReLU(0.2)]
    return [*layers, nn.Conv2d(widths[-1], 1, 4, 1, 0)]


class PatchDiscriminator(nn.Module):
    """Images [N, C_i, S, S] in [-1, 1], concatenated along channels (``in_channels`` = sum of C_i)
    -> logits [N, 1, h, w], one per patch. pix2pix scores (source, image) pairs; CycleGAN one image.

    At S = 256: 256x256 patches of 1 pixel, 126x126 of 16, 30x30 of 70, 1x1 for "image";
    at S = 32: 32x32, 14x14, 2x2 and 1x1.
    """

    def __init__(
        self, in_channels: int, size: int, channels: int, receptive_field: ReceptiveField, norm: Norm = "batch"
    ) -> None:
        super().__init__()
        make_norm = NORMS[norm]
        if receptive_field == 1:
            layers = _pixel_layers(in_channels, channels, make_norm)
        elif receptive_field == "image":
            layers = _image_layers(in_channels, channels, size, make_norm)
        else:
            layers = _patch_layers(in_channels, channels, {16: 1, 70: 3}[receptive_field], make_norm)
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, *images: Tensor) -> Tensor:
        return self.net(torch.cat(images, dim=1))


@register_model("pix2pix", Pix2PixConfig)
def build_pix2pix(cfg: Pix2PixConfig, spec: Spec) -> dict:
    source = image_field(spec, "pix2pix", SIZES, key="source")
    target = image_field(spec, "pix2pix", SIZES, key="target")
    if source.height != target.height:
        raise ConfigError(
            f"pix2pix translates between images of one size; the data's source is {source.height} px "
            f"and its target {target.height} px. Set both to one of {SIZES}"
        )
    return {
        "G": lambda: UNetGenerator(source.shape, target.shape, cfg.g_channels, cfg.g_dropout),
        "D": lambda: PatchDiscriminator(
            source.channels + target.channels, source.height, cfg.d_channels, cfg.d_receptive_field
        ),
    }
