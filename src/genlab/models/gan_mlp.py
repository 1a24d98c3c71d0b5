"""The MLP GAN of Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014), for MNIST.

Follows the paper's released pylearn2 config (github.com/goodfeli/adversarial, mnist.yaml):

- G: 100-d noise -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid, weights U(-0.05, 0.05), the
  output bias set to the logit of the data's mean pixel intensities. Noise enters only here.
- D: 784 -> maxout 240 units x 5 pieces -> maxout 240 x 5 -> one logit, weights U(-0.005,
  0.005), dropout on each layer's input (keep 0.8 on the image, 0.5 on hidden units).

Differences: the sigmoid output is rescaled to [-1, 1] (below); D returns a logit and the
loss applies the sigmoid (``genlab.losses.gan``); dropout is PyTorch's inverted dropout,
which is the paper's ``input_scales`` (1.25 and 2) applied at training instead of test time.
The optimiser (the paper: SGD with momentum 0.5 -> 0.7, lr 0.1 decaying) is the objective's.

``conditional=true`` is the cGAN of Mirza & Osindero, "Conditional Generative Adversarial
Nets" (2014), on the data's class labels y (one-hot). As in their MNIST model, G maps z and
y to separate ReLU layers (200 and 1000 units: ``g_label_hidden`` of the ``g_hidden``
first-layer units read y, the rest read z), joined in the next 1200-unit layer, and D maps
the image to a maxout layer (240 units x 5 pieces) and y to another (50 x 5), joined in a
240-unit maxout layer before the logit. Differences: the joint layer has ``d_pieces`` (5)
pieces, not 4; y is never dropped out (only the image and the hidden units are, as above);
G has no dropout (the paper applied 0.5 to both nets).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import NON_NEGATIVE, PROBABILITY, ModelConfig, Range, at_least
from genlab.data.base import Classes, Image, Spec, TensorDataset, image_field, num_classes_for
from genlab.errors import ConfigError
from genlab.models.layers import Generator, Maxout, Noise, init_uniform
from genlab.registry import register_model


@dataclass
class GANMLPConfig(ModelConfig):
    name: str = "gan_mlp"
    family: ClassVar[str] = "gan"
    latent_dim: int = 100
    noise: Noise = "normal"  # the released code's default; "uniform" is U(-sqrt 3, sqrt 3)
    g_hidden: int = 1200
    d_units: int = 240  # maxout units per D layer
    d_pieces: int = 5  # linear pieces per maxout unit
    d_input_dropout: float = 0.2  # drop probability on D's input pixels (keep 0.8)
    d_hidden_dropout: float = 0.5
    conditional: bool = False  # a cGAN (Mirza & Osindero) on the data's class labels
    g_label_hidden: int = 1000  # cGAN: first-layer units of G that read the label (z gets the rest)
    d_label_units: int = 50  # cGAN: maxout units of D's label layer
    example_spec: ClassVar[Spec] = {"image": Image(1, 28, 28), "label": Classes(tuple("0123456789"))}
    example_variants: ClassVar[tuple[dict, ...]] = ({}, {"conditional": True})

    bounds: ClassVar[dict[str, Range]] = {
        "latent_dim": at_least(1),
        "g_hidden": at_least(1),
        "d_units": at_least(1),
        "d_pieces": at_least(1),
        "d_input_dropout": PROBABILITY,
        "d_hidden_dropout": PROBABILITY,
        "g_label_hidden": NON_NEGATIVE,
        "d_label_units": at_least(1),
    }

    def __post_init__(self) -> None:
        if self.conditional and not 0 < self.g_label_hidden < self.g_hidden:
            raise ConfigError(
                f"model.g_label_hidden ({self.g_label_hidden}) must be between 0 and model.g_hidden "
                f"({self.g_hidden}) exclusive: the label and z each get part of G's first layer"
            )


class Parallel(nn.Module):
    """Two branches over the two parts of a joined input, outputs concatenated:
    [N, in_a + in_b] -> [N, out_a + out_b]. cGAN's separate layers for z (or the image) and y."""

    def __init__(self, a: nn.Module, b: nn.Module, in_a: int) -> None:
        super().__init__()
        self.a, self.b, self.in_a = a, b, in_a

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.a(x[:, : self.in_a]), self.b(x[:, self.in_a :])], dim=1)


def join_one_hot(h: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """h: [N, F], labels: [N] -> [N, F + num_classes], the one-hot labels appended."""
    if labels is None:
        raise ConfigError("this cGAN network is class-conditional: call it with labels [N]")
    return torch.cat([h, F.one_hot(labels, num_classes).to(h.dtype)], dim=1)


class MLPGenerator(Generator):
    """z: [N, latent_dim] (and labels [N] when ``num_classes``) -> images [N, C, H, W] in [-1, 1]."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        hidden: int,
        noise: Noise,
        num_classes: int = 0,
        label_hidden: int = 0,
    ) -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.noise = tuple(image_shape), latent_dim, noise
        self.num_classes = num_classes
        if num_classes:  # the latent and the one-hot label arrive joined
            first: nn.Module = Parallel(
                nn.Linear(latent_dim, hidden - label_hidden), nn.Linear(num_classes, label_hidden), latent_dim
            )
        else:
            first = nn.Linear(latent_dim, hidden)
        self.net = nn.Sequential(
            first,
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, prod(image_shape)),
        )
        init_uniform(self, 0.05)

    def init_from_data(self, data: TensorDataset) -> None:
        """Set the output bias to the logit of each pixel's mean intensity in [0, 1]
        (pylearn2's init_sigmoid_bias_from_marginals)."""
        images = data["image"]
        mean = (images.sum(dim=0, dtype=torch.float64) / (255.0 * len(images))).flatten().float()
        out = self.net[-1]
        assert isinstance(out, nn.Linear)
        with torch.no_grad():
            out.bias.copy_(torch.logit(mean.clamp(1e-3, 1 - 1e-3)))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        h = join_one_hot(z, labels, self.num_classes) if self.num_classes else z
        # The paper's sigmoid models pixel intensities in [0, 1]; genlab's models work in
        # [-1, 1], so 2*sigmoid - 1 (= tanh(a/2)) is the same output unit on the same scale as
        # the real images D sees, and its bias init from the data marginals still holds.
        return (2 * torch.sigmoid(self.net(h)) - 1).view(z.shape[0], *self.image_shape)


class MaxoutDiscriminator(nn.Module):
    """x: [N, C, H, W] in [-1, 1] (and labels [N] when ``num_classes``) -> logits [N]."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        units: int,
        pieces: int,
        p_input: float,
        p_hidden: float,
        num_classes: int = 0,
        label_units: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes, pixels = num_classes, prod(image_shape)
        if num_classes:  # the flat image and the one-hot label arrive joined
            first: list[nn.Module] = [
                Parallel(
                    nn.Sequential(nn.Dropout(p_input), Maxout(pixels, units, pieces)),
                    Maxout(num_classes, label_units, pieces),
                    pixels,
                )
            ]
        else:
            first = [nn.Flatten(), nn.Dropout(p_input), Maxout(pixels, units, pieces)]
        self.net = nn.Sequential(
            *first,
            nn.Dropout(p_hidden),
            Maxout(units + label_units, units, pieces),
            nn.Dropout(p_hidden),
            nn.Linear(units, 1),
        )
        init_uniform(self, 0.005)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = join_one_hot(x.flatten(1), labels, self.num_classes) if self.num_classes else x
        return self.net(h).squeeze(1)


@register_model("gan_mlp", GANMLPConfig)
def build_gan_mlp(cfg: GANMLPConfig, spec: Spec) -> dict:
    shape, k = image_field(spec, "gan_mlp").shape, num_classes_for(spec, "gan_mlp", cfg.conditional)
    g_label, d_label = (cfg.g_label_hidden, cfg.d_label_units) if k else (0, 0)
    return {
        "G": lambda: MLPGenerator(shape, cfg.latent_dim, cfg.g_hidden, cfg.noise, k, g_label),
        "D": lambda: MaxoutDiscriminator(
            shape, cfg.d_units, cfg.d_pieces, cfg.d_input_dropout, cfg.d_hidden_dropout, k, d_label
        ),
    }
