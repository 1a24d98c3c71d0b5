"""Text-to-image GANs on captioned sprites: StackGAN's stage I (Zhang et al., ICCV 2017) with GAN-INT-CLS's
matching-aware discriminator (Reed et al., ICML 2016).

- Text encoder (one in G, one in D): word embeddings and a GRU whose states, averaged over the
  caption's words, are the sentence embedding (:class:`genlab.models.text_embedding.TextEncoder`).
  By default each is learned with its network, through the adversarial game alone; with
  ``model.text_encoder: RUN`` both are a ``text_embedding`` run's text encoder, pre-trained as a
  joint image-text embedding and frozen, as the papers' char-CNN-RNN is.
- Conditioning augmentation (StackGAN): the embedding gives mu and sigma of a Gaussian over the
  condition c = mu + sigma * eps, with KL(N(mu, sigma^2) || N(0, I)) added to G's loss
  (``TextGenerator(z, tokens, with_kl=True)``). Here eps is part of the latent (the last ``c_dim``
  entries of z), so a latent and a caption always give the same image.
- G: [z, c] through the DCGAN generator; D: the DCGAN discriminator's convolutions to 4x4
  (with spectral norm instead of batch norm by default),
  the sentence embedding projected and tiled over the 4x4 map, a 1x1 convolution and a
  4x4 one to the logit. The GAN objective's ``matching_aware`` term shows D real images with
  mismatched captions as fakes.

Differences: one stage (StackGAN's stage II, which refines 64 to 256 pixels, has no use at 32
pixels on a CPU); the DCGAN layouts of :mod:`genlab.models.dcgan` instead of the papers' nets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, TensorDataset, Tokens, image_field
from genlab.data.captions import MAX_WORDS, VOCABULARY, random_captions, tokenize
from genlab.errors import ConfigError
from genlab.gaussians import kl_divergence
from genlab.models.dcgan import BASE_SIDE, DCGANDiscriminator, DCGANGenerator
from genlab.models.layers import Generator, maybe_sn
from genlab.models.text_embedding import TextEncoder, pretrained_text_encoder
from genlab.registry import register_model


def text_encoder(vocabulary: tuple[str, ...], text_dim: int, pretrained: str) -> TextEncoder:
    """A sentence encoder, frozen when it will be a pre-trained run's (loaded by :func:`load_pretrained`),
    so that no optimiser moves it and the loop, which toggles only trainable parameters, leaves it frozen."""
    return TextEncoder(len(vocabulary), text_dim).requires_grad_(not pretrained)


def load_pretrained(encoder: TextEncoder, run_dir: str, vocabulary: tuple[str, ...]) -> None:
    """``encoder`` <- the text encoder of the ``text_embedding`` run ``run_dir``; nothing when it is empty."""
    if run_dir:
        encoder.load_state_dict(pretrained_text_encoder(run_dir, vocabulary, encoder.gru.hidden_size))


class TextGenerator(Generator):
    """(z [N, latent_dim], captions [N, L]) -> images [N, C, S, S] in [-1, 1].

    ``latent_dim`` = noise_dim + c_dim: the last c_dim entries are conditioning augmentation's eps.
    """

    condition_key = "caption"  # the batch field the GAN objective hands to G and D

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        noise_dim: int,
        c_dim: int,
        text_dim: int,
        channels: int,
        vocabulary: tuple[str, ...],
        max_words: int,
        pretrained_text: str = "",
    ) -> None:
        super().__init__()
        self.image_shape, self.latent_dim, self.c_dim = tuple(image_shape), noise_dim + c_dim, c_dim
        self.vocabulary, self.max_words, self.pretrained_text = vocabulary, max_words, pretrained_text
        self.text = text_encoder(vocabulary, text_dim, pretrained_text)
        self.augment = nn.Linear(text_dim, 2 * c_dim)
        self.net = DCGANGenerator(image_shape, noise_dim + c_dim, channels)

    def init_from_data(self, data: TensorDataset) -> None:
        """Before a new run trains (not on resume or ``genlab.load``, which read the run's own weights)."""
        load_pretrained(self.text, self.pretrained_text, self.vocabulary)

    def embed_text(self, tokens: Tensor) -> Tensor:
        """The sentence embeddings [N, text_dim] that conditioning augmentation draws its condition around."""
        return self.text(tokens)

    def _condition(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.augment(self.embed_text(tokens)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def forward(self, z: Tensor, tokens: Tensor, with_kl: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Images; with ``with_kl`` also conditioning augmentation's KL(N(mu, sigma^2) || N(0, I)).

        The KL is per dimension, averaged over dimensions and examples as StackGAN's code does (a
        sum over dimensions weighs it c_dim times more, and at weight 1 that pushed every condition
        to the prior: G ignored the text). It comes out of the forward pass, not a second call, so
        that under DDP its gradients go through G's wrapper and are all-reduced with the rest.
        """
        noise, eps = z[:, : -self.c_dim], z[:, -self.c_dim :]
        mu, logvar = self._condition(tokens)
        images = self.net(torch.cat([noise, mu + (0.5 * logvar).exp() * eps], dim=1))
        if not with_kl:
            return images
        return images, kl_divergence(mu, logvar).mean() / self.c_dim

    def condition(self, n: int, labels: Tensor | None, generator: torch.Generator | None) -> Tensor:
        """Captions [n, L] (word indices; see :meth:`tokens`) on this model's device, random ones without."""
        return self.random_captions(n, generator) if labels is None else labels.to(next(self.parameters()).device)

    def tokens(self, texts: list[str]) -> Tensor:
        """Texts in this model's vocabulary -> word indices [N, L] on its device."""
        if self.vocabulary != VOCABULARY:
            raise ConfigError("this model was trained with another vocabulary than genlab's sprite captions")
        return tokenize(texts, self.max_words).to(next(self.parameters()).device)

    def random_captions(self, n: int, generator: torch.Generator | None) -> Tensor:
        return self.tokens(random_captions(n, generator))


class MatchingDiscriminator(nn.Module):
    """(images [N, C, S, S], captions [N, L]) -> logits [N]: is this a real image of this caption?"""

    spectral_norm_setting = "model.d_spectral_norm=true"  # SpectralNormOption: the health advice may name it

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int,
        text_dim: int,
        vocabulary: tuple[str, ...],
        spectral_norm: bool,
        pretrained_text: str = "",
        projected: int = 32,
    ) -> None:
        super().__init__()
        size = image_shape[-1]
        self.vocabulary, self.pretrained_text = vocabulary, pretrained_text
        self.text = text_encoder(vocabulary, text_dim, pretrained_text)
        self.project = nn.Sequential(nn.Linear(text_dim, projected), nn.LeakyReLU(0.2))
        body = DCGANDiscriminator(image_shape, channels, sn=spectral_norm, batch_norm=False)
        self.features = nn.Sequential(*list(body.net)[:-2])  # everything before the last conv: [N, W, side, side]
        width = channels * 2 ** ((size // BASE_SIDE[size]).bit_length() - 2)
        self.side = BASE_SIDE[size]
        self.joint = nn.Sequential(
            maybe_sn(nn.Conv2d(width + projected, width, 1), spectral_norm),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Conv2d(width, 1, self.side), spectral_norm),
            nn.Flatten(0),
        )

    def init_from_data(self, data: TensorDataset) -> None:
        """Before a new run trains: the pre-trained text encoder, as G's."""
        load_pretrained(self.text, self.pretrained_text, self.vocabulary)

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        h = self.features(images)
        t = self.project(self.text(tokens))[:, :, None, None].expand(-1, -1, self.side, self.side)
        return self.joint(torch.cat([h, t], dim=1))


@dataclass
class TextGANConfig(ModelConfig):
    name: str = "text_gan"
    family: ClassVar[str] = "gan"
    noise_dim: int = 64
    c_dim: int = 32  # conditioning augmentation's dimension (128 in StackGAN)
    text_dim: int = 64  # word embedding and GRU width
    g_channels: int = 32
    d_channels: int = 32
    d_spectral_norm: bool = True  # on D's image layers (SN-DCGAN); its text encoder stays plain
    # A text_embedding run (configs/text_embedding_sprites.yaml) whose text encoder G and D use, frozen;
    # empty: each learns its own. Read when a run starts only: the GAN's export holds the weights.
    text_encoder: str = ""
    example_spec: ClassVar[Spec] = {"image": Image(3, 32, 32), "caption": Tokens(VOCABULARY, MAX_WORDS)}
    example_variants: ClassVar[tuple[dict, ...]] = (
        {"noise_dim": 8, "c_dim": 4, "text_dim": 8, "g_channels": 4, "d_channels": 4},
    )
    bounds: ClassVar[dict[str, Range]] = {
        "noise_dim": at_least(1),
        "c_dim": at_least(1),
        "text_dim": at_least(1),
        "g_channels": at_least(1),
        "d_channels": at_least(1),
    }


@register_model("text_gan", TextGANConfig)
def build_text_gan(cfg: TextGANConfig, spec: Spec) -> dict:
    shape = image_field(spec, "text_gan", sorted(BASE_SIDE)).shape
    caption = spec.get("caption")
    if not isinstance(caption, Tokens):
        raise ConfigError("text_gan needs captions: use data name captioned (sprites with their captions)")
    return {
        "G": lambda: TextGenerator(
            shape,
            cfg.noise_dim,
            cfg.c_dim,
            cfg.text_dim,
            cfg.g_channels,
            caption.vocabulary,
            caption.length,
            cfg.text_encoder,
        ),
        "D": lambda: MatchingDiscriminator(
            shape, cfg.d_channels, cfg.text_dim, caption.vocabulary, cfg.d_spectral_norm, cfg.text_encoder
        ),
    }
