"""Convolutional GANs: DCGAN (Radford et al., ICLR 2016) and SNGAN's ResNet (Miyato et al., ICLR 2018).

``dcgan`` follows the paper's guidelines at 28, 32 and 64 pixels: strided (transposed)
convolutions instead of pooling, batch norm in both nets except D's input layer, ReLU in G
with a tanh output, LeakyReLU(0.2) in D, weights N(0, 0.02). At 64 pixels it is the
paper's (and the PyTorch example's) network; 28 and 32 pixels drop stages, starting G
from 7x7 and 4x4 maps. Differences: D returns a logit (the loss applies any sigmoid);
layers not followed by batch norm keep their bias (the PyTorch example drops all); and
``spectral_norm=true`` puts spectral normalisation on every D layer and drops D's batch
norm (Miyato et al.'s "SN-DCGAN" recipe); ``d_norm`` can also drop it for WGAN-GP, whose
per-example gradient penalty is invalid under batch norm (Gulrajani et al.).

``sngan_resnet32`` is Miyato et al.'s CIFAR-10 ResNet (their appendix): G with three
upsampling residual blocks of 256 channels, D with four residual blocks of 128 channels,
spectral norm everywhere in D and global sum pooling. Differences: PyTorch's default
initialisation instead of their Xavier-uniform. A GPU model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, image_field
from genlab.models.layers import DownBlock, Generator, LatentProjection, UpBlock, init_dcgan, maybe_sn
from genlab.registry import register_model

# Side of the first feature map per supported image size; each stage doubles it.
BASE_SIDE = {28: 7, 32: 4, 64: 4}


# ----------------------------------------------------------------------------- DCGAN


@dataclass
class DCGANConfig(ModelConfig):
    name: str = "dcgan"
    family: ClassVar[str] = "gan"
    latent_dim: int = 100
    g_channels: int = 64  # G's last hidden width (ngf); doubles towards the input
    d_channels: int = 64  # D's first width (ndf); doubles per stride-2 stage
    spectral_norm: bool = False  # on every D layer; D then has no batch norm
    d_norm: Literal["batch", "none"] = "batch"  # "none" for WGAN-GP and R1
    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
    }


class DCGANGenerator(Generator):
    """z: [N, latent_dim] -> images [N, C, S, S] in [-1, 1], S in {28, 32, 64}."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, channels: int) -> None:
        super().__init__()
        self.image_shape, self.latent_dim = tuple(image_shape), latent_dim
        size = image_shape[-1]
        stages = (size // BASE_SIDE[size]).bit_length() - 1  # stride-2 upsamplings
        widths = [channels * 2**i for i in reversed(range(stages))]  # e.g. [512, 256, 128, 64]
        layers: list[nn.Module] = [
            LatentProjection(latent_dim, widths[0], BASE_SIDE[size], bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], image_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """x: [N, C, S, S] in [-1, 1] -> logits [N]."""

    spectral_norm_setting = "model.spectral_norm=true"  # SpectralNormOption: the health advice may name it

    def __init__(self, image_shape: tuple[int, int, int], channels: int, sn: bool, batch_norm: bool) -> None:
        super().__init__()
        size = image_shape[-1]
        stages = (size // BASE_SIDE[size]).bit_length() - 1
        widths = [channels * 2**i for i in range(stages)]  # e.g. [64, 128, 256, 512]
        # No normalisation on the input layer: the paper found it made samples oscillate.
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(image_shape[0], widths[0], 4, 2, 1), sn), nn.LeakyReLU(0.2)]
        for c_in, c_out in itertools.pairwise(widths):
            layers.append(maybe_sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm), sn))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        layers += [maybe_sn(nn.Conv2d(widths[-1], 1, BASE_SIDE[size], 1, 0), sn), nn.Flatten(0)]
        self.net = nn.Sequential(*layers)
        init_dcgan(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_model("dcgan", DCGANConfig)
def build_dcgan(cfg: DCGANConfig, spec: Spec) -> dict:
    shape = image_field(spec, "dcgan", sorted(BASE_SIDE)).shape
    batch_norm = cfg.d_norm == "batch" and not cfg.spectral_norm
    return {
        "G": lambda: DCGANGenerator(shape, cfg.latent_dim, cfg.g_channels),
        "D": lambda: DCGANDiscriminator(shape, cfg.d_channels, cfg.spectral_norm, batch_norm),
    }


# ------------------------------------------------------------------- SNGAN ResNet 32


@dataclass
class SNGANResNet32Config(ModelConfig):
    name: str = "sngan_resnet32"
    family: ClassVar[str] = "gan"
    latent_dim: int = 128
    g_channels: int = 256
    d_channels: int = 128
    example_spec: ClassVar[Spec] = {"image": Image(3, 32, 32)}
    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
    }


class ResNetGenerator(Generator):
    """z: [N, latent_dim] -> images [N, C, 32, 32] in [-1, 1]."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, channels: int) -> None:
        super().__init__()
        self.image_shape, self.latent_dim = tuple(image_shape), latent_dim
        self.stem = nn.Linear(latent_dim, channels * 4 * 4)
        self.blocks = nn.Sequential(*(UpBlock(channels, channels) for _ in range(3)))  # 4 -> 32
        self.head = nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, image_shape[0], 3, 1, 1), nn.Tanh()
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.stem(z).view(z.shape[0], -1, 4, 4)
        return self.head(self.blocks(h))


class ResNetDiscriminator(nn.Module):
    """x: [N, C, 32, 32] in [-1, 1] -> logits [N]."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            DownBlock(image_shape[0], channels, down=True, first=True),  # 32 -> 16
            DownBlock(channels, channels, down=True),  # 16 -> 8
            DownBlock(channels, channels, down=False),
            DownBlock(channels, channels, down=False),
        )
        self.head = maybe_sn(nn.Linear(channels, 1), True)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(x).relu().sum(dim=(2, 3))  # global sum pooling, as in the paper
        return self.head(h).squeeze(1)


@register_model("sngan_resnet32", SNGANResNet32Config)
def build_sngan_resnet32(cfg: SNGANResNet32Config, spec: Spec) -> dict:
    shape = image_field(spec, "sngan_resnet32", [32]).shape
    return {
        "G": lambda: ResNetGenerator(shape, cfg.latent_dim, cfg.g_channels),
        "D": lambda: ResNetDiscriminator(shape, cfg.d_channels),
    }
