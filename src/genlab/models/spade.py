"""SPADE / GauGAN (Park et al., CVPR 2019): an image from a label map and a style image.

- Spatially-adaptive normalisation: every normalisation layer of G normalises its input without
  learned affine parameters (batch norm, the paper's choice), then scales and shifts it per pixel by
  gamma(m) and beta(m), two 3x3 convolutions of a shared 3x3 convolution of the label map m
  (one-hot, resized to the layer). So the layout reaches every layer rather than only the input,
  where normalisation would wash it out.
- G: the style code z -> a 4x4 grid by a linear layer, then SPADE residual blocks, each followed by a
  2x upsampling until the image's size, then a 3x3 convolution to RGB and tanh. Spectral norm on its
  convolutions, as in the paper.
- Style encoder: strided convolutions with instance norm to (mu, log-variance) of z, a VAE's encoder
  (the paper's multimodal mode, KL weight 0.05): a style image fixes z to its colours and texture, and
  z ~ N(0, I) draws a new style for the same layout.
- D: a multi-scale PatchGAN (the paper's two scales: the image and its 2x-downsampled copy), each on
  the label map concatenated with the image, with instance norm and spectral norm; it returns every
  layer's features, for G's feature-matching loss.

Differences from the paper: narrower networks for 32-pixel sprites (the paper's nf is 64 at 256 px
with 7 blocks); no VGG perceptual loss (its weights are not available offline).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, LabelMap, Spec, image_field
from genlab.data.pairs import PALETTE
from genlab.errors import ConfigError
from genlab.images import to_model
from genlab.models.protocols import eval_mode
from genlab.registry import register_model

START = 4  # G's first grid, in pixels


def one_hot(labels: Tensor, classes: int) -> Tensor:
    """Label maps [N, H, W] (int64) -> one-hot float [N, classes, H, W]."""
    return F.one_hot(labels.long(), classes).permute(0, 3, 1, 2).float()


class SPADENorm(nn.Module):
    """Batch norm without affine parameters, then x * (1 + gamma(m)) + beta(m) per pixel."""

    def __init__(self, channels: int, classes: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(classes, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, layout: Tensor) -> Tensor:
        features = self.shared(F.interpolate(layout, size=x.shape[2:], mode="nearest"))
        return self.norm(x) * (1 + self.gamma(features)) + self.beta(features)


class SPADEBlock(nn.Module):
    """The paper's SPADE ResBlk: two (SPADE, leaky ReLU, 3x3 conv) units, a learned shortcut when the width changes."""

    def __init__(self, c_in: int, c_out: int, classes: int, hidden: int) -> None:
        super().__init__()
        middle = min(c_in, c_out)
        self.norm_0, self.conv_0 = (
            SPADENorm(c_in, classes, hidden),
            spectral_norm(nn.Conv2d(c_in, middle, 3, padding=1)),
        )
        self.norm_1, self.conv_1 = (
            SPADENorm(middle, classes, hidden),
            spectral_norm(nn.Conv2d(middle, c_out, 3, padding=1)),
        )
        self.shortcut = None
        if c_in != c_out:
            self.norm_s = SPADENorm(c_in, classes, hidden)
            self.shortcut = spectral_norm(nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor, layout: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(self.norm_s(x, layout))
        h = self.conv_0(F.leaky_relu(self.norm_0(x, layout), 0.2))
        h = self.conv_1(F.leaky_relu(self.norm_1(h, layout), 0.2))
        return skip + h


class StyleEncoder(nn.Module):
    """Images [N, C, S, S] in [-1, 1] -> (mu, log-variance) of the style code, each [N, z_dim]."""

    def __init__(self, channels: int, size: int, width: int, z_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, s = channels, size
        while s > START:
            layers += [
                nn.Conv2d(c, width, 3, stride=2, padding=1),
                nn.InstanceNorm2d(width, affine=True),
                nn.LeakyReLU(0.2),
            ]
            c, s = width, s // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.mu = nn.Linear(width * START * START, z_dim)
        self.logvar = nn.Linear(width * START * START, z_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x)
        return self.mu(h), self.logvar(h)


class SPADEGenerator(nn.Module):
    """Label maps [N, H, W] and styles -> images [N, C, H, W] in [-1, 1]. The export: the generator and the
    style encoder, so that ``synthesise`` takes a style image."""

    def __init__(self, image_shape: tuple[int, int, int], classes: int, channels: int, z_dim: int, hidden: int) -> None:
        super().__init__()
        c, size, _ = image_shape
        self.image_shape: tuple[int, int, int] = (c, size, size)
        self.classes, self.z_dim = classes, z_dim
        blocks = size.bit_length() - START.bit_length()  # upsamplings from 4x4
        widths = [channels * min(8, 2 ** (blocks - i)) for i in range(blocks + 1)]
        self.project = nn.Linear(z_dim, widths[0] * START * START)
        self.blocks = nn.ModuleList(SPADEBlock(a, b, classes, hidden) for a, b in itertools.pairwise(widths))
        self.last = SPADEBlock(widths[-1], widths[-1], classes, hidden)
        self.to_rgb = nn.Conv2d(widths[-1], c, 3, padding=1)
        self.encoder = StyleEncoder(c, size, channels * 2, z_dim)

    def forward(self, labels: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Training's pass, through DDP: (images in the style of ``style`` with a code drawn from its posterior,
        the posterior's mu and log-variance)."""
        mu, logvar = self.encoder(style)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(labels, z), mu, logvar

    def decode(self, labels: Tensor, z: Tensor) -> Tensor:
        """Label maps [N, H, W] and style codes [N, z_dim] -> images [N, C, H, W] in [-1, 1]."""
        layout = one_hot(labels, self.classes)
        x = self.project(z).view(z.shape[0], -1, START, START)
        for block in self.blocks:
            x = F.interpolate(block(x, layout), scale_factor=2, mode="nearest")
        x = self.last(x, layout)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))

    @property
    def source_shape(self) -> tuple[int, int, int]:
        """A Translator's source: the label map drawn in the label palette (data.pairs.PALETTE), RGB."""
        return (3, self.image_shape[1], self.image_shape[2])

    @property
    def target_shape(self) -> tuple[int, int, int]:
        return self.image_shape

    def labels_of(self, source: Tensor) -> Tensor:
        """Palette images [N, 3, H, W] in [-1, 1] -> label maps [N, H, W]: each pixel the class whose palette
        colour is nearest (so an upload's compression noise does not matter)."""
        colours = to_model(PALETTE[: self.classes]).to(source)  # [K, 3] in [-1, 1]
        distance = (source[:, None] - colours[None, :, :, None, None]).pow(2).sum(dim=2)  # [N, K, H, W]
        return distance.argmin(dim=1)

    def translate(self, source: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The Translator view: a palette label map -> an image in a style drawn from ``generator``."""
        return self.synthesise(self.labels_of(source.to(self.to_rgb.weight.device)), None, generator)

    def style(self, images: Tensor) -> Tensor:
        """Style images -> their codes (the posterior means)."""
        return self.encoder(images)[0]

    def synthesise(
        self, labels: Tensor, style: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Label maps [N, H, W] -> images [N, C, H, W] in [-1, 1], in eval mode and without gradients (the
        ``LayoutSynthesiser`` protocol): in the style
        of ``style`` images [N, C, H, W] when given, else of codes drawn from N(0, I) with ``generator``."""
        with eval_mode(self):
            device = self.to_rgb.weight.device
            labels = labels.to(device)
            if style is not None:
                z = self.style(style.to(device))
            else:
                z = torch.randn(labels.shape[0], self.z_dim, generator=generator).to(device)
            return self.decode(labels, z)


class MultiscaleDiscriminator(nn.Module):
    """(label maps [N, H, W], images) -> for each scale the features of every layer, the last being the patch
    logits: list (scales) of lists of tensors."""

    def __init__(self, channels: int, classes: int, width: int, scales: int, layers: int) -> None:
        super().__init__()
        self.classes = classes
        self.scales = nn.ModuleList()  # of ModuleLists of layers
        for _ in range(scales):
            convs, c = nn.ModuleList(), channels + classes
            for i in range(layers):
                w = width * min(8, 2**i)
                stride = 2 if i < layers - 1 else 1
                norm: nn.Module = nn.Identity() if i == 0 else nn.InstanceNorm2d(w)
                convs.append(nn.Sequential(spectral_norm(nn.Conv2d(c, w, 4, stride, 2)), norm, nn.LeakyReLU(0.2)))
                c = w
            convs.append(nn.Sequential(nn.Conv2d(c, 1, 4, 1, 2)))
            self.scales.append(convs)

    def forward(self, labels: Tensor, images: Tensor) -> list[list[Tensor]]:
        x = torch.cat([one_hot(labels, self.classes), images], dim=1)
        out = []
        for i, convs in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            features: list[Tensor] = []
            h = x
            assert isinstance(convs, nn.ModuleList)
            for conv in convs:
                h = conv(h)
                features.append(h)
            out.append(features)
        return out


def label_field(spec: Spec, model: str) -> tuple[str, LabelMap]:
    found = [(k, f) for k, f in spec.items() if isinstance(f, LabelMap)]
    if len(found) != 1:
        raise ConfigError(f"{model} needs one label map field and an image; use color_sprites (its 'segmentation')")
    return found[0]


@dataclass
class SPADEConfig(ModelConfig):
    name: str = "spade"
    family: ClassVar[str] = "spade"
    g_channels: int = 16  # G's narrowest width (the paper: 64)
    z_dim: int = 64  # the style code (the paper: 256)
    hidden: int = 32  # of each SPADE layer's shared convolution (the paper: 128)
    d_channels: int = 32
    d_scales: int = 2  # the paper's
    d_layers: int = 3  # strided layers per scale (the paper: 4 at 256 px)
    bounds: ClassVar[dict[str, Range]] = {
        "g_channels": at_least(1),
        "z_dim": at_least(1),
        "hidden": at_least(1),
        "d_channels": at_least(1),
        "d_scales": at_least(1),
        "d_layers": at_least(1),
    }
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"g_channels": 2, "z_dim": 4, "hidden": 4, "d_channels": 4, "d_scales": 2, "d_layers": 2},
    )
    example_spec: ClassVar[Spec] = {
        "image": Image(3, 16, 16),
        "segmentation": LabelMap(("background", "square", "ellipse"), 16, 16),
    }


@register_model("spade", SPADEConfig)
def build_spade(cfg: SPADEConfig, spec: Spec) -> dict:
    image = image_field(spec, "spade")
    _, labels = label_field(spec, "spade")
    if image.height != image.width or image.height & (image.height - 1) or image.height < 8:
        raise ConfigError(
            f"spade needs square images of 8, 16, 32, 64... pixels; the data's are {image.height}x{image.width}"
        )
    if (labels.height, labels.width) != (image.height, image.width):
        raise ConfigError("spade needs the label map and the image at one size")
    return {
        "G": lambda: SPADEGenerator(image.shape, labels.num_classes, cfg.g_channels, cfg.z_dim, cfg.hidden),
        "D": lambda: MultiscaleDiscriminator(
            image.channels, labels.num_classes, cfg.d_channels, cfg.d_scales, cfg.d_layers
        ),
    }
