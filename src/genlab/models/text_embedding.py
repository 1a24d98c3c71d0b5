"""A joint embedding of captions and images, pre-trained so that a text-to-image GAN reads a fixed
text encoder (Reed et al., CVPR 2016, "Learning deep representations of fine-grained visual
descriptions": the deep symmetric structured joint embedding that GAN-INT-CLS and StackGAN use).

- :class:`TextEncoder`: word embeddings and a GRU whose states, averaged over the caption's words,
  are the sentence embedding; ``text_gan``'s G and D use the same class, learned or taken from a run
  of this model (:func:`pretrained_text_encoder`).
- :class:`ImageEncoder`: a small strided convolutional net to a feature vector.
- Each encoder is followed by a linear projection to the shared space, unit-normalised, and a learned
  temperature scales their dot products (CLIP, Radford et al. 2021; the objective is
  ``objectives/contrastive.py``).

Differences: Reed et al. encode characters with a CNN-RNN and score with a plain inner product and
a hinge loss; sprite captions are words from a fixed vocabulary, and CLIP's symmetric
cross-entropy is the same two-way ranking in its smooth form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.config import ModelConfig, Range, at_least
from genlab.data.base import Image, Spec, Tokens, image_field, spec_from_json
from genlab.data.captions import MAX_WORDS, VOCABULARY
from genlab.errors import ConfigError, RunError
from genlab.registry import register_model
from genlab.runs import checkpoint as ckpt

MAX_LOGIT_SCALE = 100.0  # CLIP's clamp: a larger scale makes the softmax unstable


class TextEncoder(nn.Module):
    """Word indices [N, L] (0 = padding, at the end) -> sentence embeddings [N, dim] (or each word's state)."""

    def __init__(self, vocabulary_size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocabulary_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def states(self, tokens: Tensor) -> Tensor:
        """Each word's GRU state [N, L, dim] (padding's too: mask it)."""
        return self.gru(self.embed(tokens))[0]

    def forward(self, tokens: Tensor) -> Tensor:
        states = self.states(tokens)
        words = (tokens != 0).unsqueeze(2).float()
        # The mean of the states over the words, not the last state alone: a GRU learned from scratch
        # keeps mostly the last words (in the first runs G followed the position words, which end most
        # captions, and nothing said before them).
        return (states * words).sum(dim=1) / words.sum(dim=1).clamp_min(1)


class ImageEncoder(nn.Module):
    """Images [N, C, S, S] in [-1, 1] -> features [N, dim]: three stride-2 convolutions, then a 4x4 map
    flattened (not pooled away: where the sprite is is half of what its caption says)."""

    def __init__(self, channels_in: int, channels: int) -> None:
        super().__init__()
        widths = (channels, 2 * channels, 4 * channels)
        layers: list[nn.Module] = []
        for w_in, w_out in zip((channels_in, *widths), widths, strict=False):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(1))
        self.dim = widths[-1] * 16

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


class TextImageEmbedding(nn.Module):
    """Captions [N, L] and images [N, C, S, S] -> unit vectors [N, embed_dim] in one space."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        vocabulary: tuple[str, ...],
        text_dim: int,
        image_channels: int,
        embed_dim: int,
    ) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        self.text = TextEncoder(len(vocabulary), text_dim)
        self.text_projection = nn.Linear(text_dim, embed_dim)
        self.image = ImageEncoder(image_shape[0], image_channels)
        self.image_projection = nn.Linear(self.image.dim, embed_dim)
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature 0.07

    def embed_text(self, tokens: Tensor) -> Tensor:
        return F.normalize(self.text_projection(self.text(tokens)), dim=1)

    def embed_images(self, images: Tensor) -> Tensor:
        return F.normalize(self.image_projection(self.image(images)), dim=1)

    def logit_scale(self) -> Tensor:
        """The inverse temperature that multiplies cosine similarities, at most :data:`MAX_LOGIT_SCALE`."""
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, tokens: Tensor, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Text embeddings [N, E], image embeddings [N, E] and the logit scale, in one call (as DDP needs)."""
        return self.embed_text(tokens), self.embed_images(images), self.logit_scale()


def pretrained_text_encoder(run_dir: str, vocabulary: tuple[str, ...], text_dim: int) -> dict[str, Tensor]:
    """The text encoder weights of a ``text_embedding`` run's export, checked against the vocabulary and
    width of the model that will use them (a ``text_gan`` with ``model.text_encoder``)."""
    key = f"model.text_encoder={run_dir}"
    try:
        info, weights = ckpt.read_export(ckpt.checkpoint_to_read(Path(run_dir)))
    except RunError as err:
        raise ConfigError(
            f"{key} is not a usable run ({err}); name a run of configs/text_embedding_sprites.yaml"
        ) from None
    model = info["model"]
    if model.get("name") != "text_embedding":
        raise ConfigError(
            f"{key} is a {model.get('name')!r} run, not a text_embedding one; train one with "
            "genlab train configs/text_embedding_sprites.yaml and name its run folder"
        )
    caption = spec_from_json(info["data"]["spec"]).get("caption")
    if not isinstance(caption, Tokens) or caption.vocabulary != vocabulary:
        raise ConfigError(
            f"{key} was trained on captions of another vocabulary than this data's; train the "
            "embedding on the same data block as the GAN"
        )
    if model["text_dim"] != text_dim:
        raise ConfigError(
            f"{key} has a text encoder {model['text_dim']} wide, this model's text_dim is {text_dim}: "
            f"set model.text_dim={model['text_dim']}"
        )
    return {name.removeprefix("text."): w for name, w in weights.items() if name.startswith("text.")}


@dataclass
class TextEmbeddingConfig(ModelConfig):
    name: str = "text_embedding"
    family: ClassVar[str] = "embedding"
    text_dim: int = 64  # word embedding and GRU width: a text_gan using this encoder needs the same text_dim
    image_channels: int = 32  # width of the image encoder's first convolution (doubled twice)
    embed_dim: int = 64  # the shared space
    example_spec: ClassVar[Spec] = {"image": Image(3, 32, 32), "caption": Tokens(VOCABULARY, MAX_WORDS)}
    example_variants: ClassVar[tuple[dict, ...]] = ({"text_dim": 8, "image_channels": 4, "embed_dim": 8},)
    bounds: ClassVar[dict[str, Range]] = {
        "text_dim": at_least(1),
        "image_channels": at_least(1),
        "embed_dim": at_least(1),
    }


@register_model("text_embedding", TextEmbeddingConfig)
def build_text_embedding(cfg: TextEmbeddingConfig, spec: Spec) -> dict:
    shape = image_field(spec, "text_embedding").shape
    caption = spec.get("caption")
    if not isinstance(caption, Tokens):
        raise ConfigError("text_embedding needs captions: use data name captioned (sprites with their captions)")
    return {
        "embedding": lambda: TextImageEmbedding(
            shape, caption.vocabulary, cfg.text_dim, cfg.image_channels, cfg.embed_dim
        )
    }
