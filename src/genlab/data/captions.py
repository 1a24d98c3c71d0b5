"""Captions of sprites from their known factors, for text-to-image models (StackGAN, GAN-INT-CLS).

Each sprite's factors are read as six discrete attributes (:data:`ATTRIBUTES`: shape, size,
colour, vertical and horizontal position, rotation) and written as a sentence from one of
several templates, e.g. "a small red heart in the upper left, rotated". The vocabulary is
fixed (:data:`VOCABULARY`), captions are a pure function of the attributes and a seed, and
:func:`tokenize` turns any text of these words into the word indices models read.

The ``captioned`` dataset wraps a sprite set (``sprites`` with ``color: true``, or
``color_sprites``) and adds ``caption`` (Tokens), ``caption_one_off`` (the same sprite's caption with
one attribute changed: a hard negative for a matching-aware D) and one Classes field per attribute
(``shape``, ``size``, ...: what an attribute classifier learns and a generated image is checked against).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from genlab.config import SEED, DataConfig, Range
from genlab.data.base import Classes, Factors, Spec, TensorDataset, Tokens, describe
from genlab.data.sprites import SpritesConfig
from genlab.errors import ConfigError
from genlab.registry import DATASETS, register_dataset

# attribute -> its words, in index order
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("square", "ellipse", "heart", "triangle"),
    "size": ("small", "big"),
    "colour": ("red", "yellow", "green", "cyan", "blue", "magenta"),
    "vertical": ("upper", "lower"),
    "horizontal": ("left", "right"),
    "rotation": ("upright", "rotated"),
}
TEMPLATES = (
    "a {size} {colour} {shape} in the {vertical} {horizontal} , {rotation}",
    "a {size} {colour} {shape} , {rotation} , {vertical} {horizontal}",
    "there is a {size} {colour} {shape} in the {vertical} {horizontal}",
    "{colour} {shape} , {size} and {rotation} , {vertical} {horizontal}",
)
VOCABULARY: tuple[str, ...] = (
    "<pad>",
    "a",
    "in",
    "the",
    "there",
    "is",
    "and",
    ",",
    *(word for words in ATTRIBUTES.values() for word in words),
)
MAX_WORDS = 12  # the longest template is 11 words
# Words a user is likely to type -> the vocabulary's word for them, named in the unknown-word error
# (not substituted: the templates name every attribute, so "at the bottom" alone is still unlike training).
SAY_INSTEAD = {
    "top": "upper",
    "bottom": "lower",
    "at": "in",
    "large": "big",
    "little": "small",
    "tiny": "small",
    "circle": "ellipse",
    "oval": "ellipse",
    "purple": "magenta",
    "pink": "magenta",
    "tilted": "rotated",
    "straight": "upright",
}
_INDEX = {word: i for i, word in enumerate(VOCABULARY)}
_SPLIT_STREAM = {"train": 0, "test": 1}


def attributes_of(factors: Tensor, names: tuple[str, ...]) -> Tensor:
    """Sprite factors [N, K] (columns named ``names``: shape, scale, rotation, pos_x, pos_y, hue)
    -> attribute indices int64 [N, 6] in the order of :data:`ATTRIBUTES`."""
    missing = [n for n in ("shape", "scale", "rotation", "pos_x", "pos_y", "hue") if n not in names]
    if missing:
        raise ConfigError(
            f"captions need coloured sprites' factors; these have no {', '.join(missing)} "
            "(use sprites with color: true, or color_sprites)"
        )
    f = {name: factors[:, names.index(name)] for name in names}
    colour = torch.floor(f["hue"] * 6 + 0.5).long() % 6  # nearest of the six hues k / 6
    return torch.stack(
        [
            f["shape"].long(),
            (f["scale"] >= 0.75).long(),  # scale is uniform in [0.5, 1)
            colour,
            (f["pos_y"] >= 0.5).long(),  # pos_y runs top to bottom
            (f["pos_x"] >= 0.5).long(),
            (f["rotation"] >= np.pi / 8).long(),  # rotation is uniform in [0, pi/2)
        ],
        dim=1,
    )


def caption(attributes: Tensor, template: int) -> str:
    """One sentence for attribute indices [6] with template number ``template``."""
    words = {name: ATTRIBUTES[name][int(k)] for name, k in zip(ATTRIBUTES, attributes, strict=False)}
    return TEMPLATES[template % len(TEMPLATES)].format(**words)


def captions(attributes: Tensor, seed: int) -> list[str]:
    """A caption per row of ``attributes`` [N, 6], each with a template drawn from ``seed``."""
    templates = np.random.default_rng(seed).integers(0, len(TEMPLATES), size=len(attributes))
    return [caption(a, t) for a, t in zip(attributes, templates, strict=False)]


def tokenize(texts: list[str], length: int = MAX_WORDS) -> Tensor:
    """Texts -> int64 [N, length] word indices, padded with 0. Unknown words are an error naming them."""
    rows = []
    for text in texts:
        words = re.findall(r"[a-z]+|,", text.lower())
        unknown = sorted({w for w in words if w not in _INDEX})
        if unknown:
            hints = "".join(f"'{SAY_INSTEAD[w]}' for '{w}', " for w in unknown if w in SAY_INSTEAD)
            raise ConfigError(
                f"unknown words {unknown} in {text!r}; {'say ' + hints if hints else ''}captions use: "
                f"{' '.join(w for w in VOCABULARY[1:])}, and name every attribute, e.g. "
                f"'a big red square in the lower left , upright'"
            )
        if not words:
            raise ConfigError(f"{text!r} has no words; describe a sprite, e.g. 'a big red square in the upper left'")
        if len(words) > length:
            raise ConfigError(f"{text!r} has {len(words)} words; at most {length}")
        rows.append([_INDEX[w] for w in words] + [0] * (length - len(words)))
    return torch.tensor(rows, dtype=torch.int64)


def attribute_sizes(shapes: int = 3) -> list[int]:
    """How many values each attribute takes, in the order of :data:`ATTRIBUTES`, with the first ``shapes`` shapes."""
    return [shapes] + [len(words) for words in list(ATTRIBUTES.values())[1:]]


def one_attribute_changed(attributes: Tensor, generator: torch.Generator, shapes: int = 3) -> Tensor:
    """``attributes`` [N, 6] with one attribute per row (uniformly chosen) set to another of its values
    (shape among the first ``shapes``): captions that are wrong in one word, as hard negatives for a
    matching-aware D, which random other captions let judge by the easiest attribute alone."""
    sizes = torch.tensor(attribute_sizes(shapes))
    rows = torch.arange(len(attributes))
    which = torch.randint(len(ATTRIBUTES), (len(attributes),), generator=generator)
    step = 1 + (torch.rand(len(attributes), generator=generator) * (sizes[which] - 1)).long()  # 1 .. size - 1
    changed = attributes.clone()
    changed[rows, which] = (attributes[rows, which] + step) % sizes[which]
    return changed


def random_attributes(n: int, generator: torch.Generator, shapes: int = 3) -> Tensor:
    """Uniformly drawn attribute indices [n, 6] (the first ``shapes`` shapes): captions to sample with."""
    return torch.stack([torch.randint(k, (n,), generator=generator) for k in attribute_sizes(shapes)], dim=1)


def random_captions(n: int, generator: torch.Generator | None) -> list[str]:
    """``n`` captions of uniformly drawn attributes (a fixed generator when none is given), for a
    text-to-image model asked for samples without captions."""
    attributes = random_attributes(n, generator if generator is not None else torch.Generator().manual_seed(0))
    return captions(attributes, seed=0)


@dataclass
class CaptionedConfig(DataConfig):
    """Keys of the ``captioned`` dataset: ``base`` is a sprite set with colour."""

    base: DataConfig = field(default_factory=lambda: SpritesConfig(name="sprites", color=True))
    seed: int = 0  # which template each caption takes, per split
    bounds: ClassVar[dict[str, Range]] = {"seed": SEED}
    example: ClassVar[dict] = {"base": {"name": "sprites", "color": True, "n_train": 64, "n_test": 16}}


@register_dataset("captioned", CaptionedConfig)
def build(cfg: CaptionedConfig, split: str) -> TensorDataset:
    base = DATASETS.get(cfg.base.name).builder(cfg.base, split)
    factors = next((name for name, f in base.spec.items() if isinstance(f, Factors)), None)
    if factors is None:
        raise ConfigError(
            f"captioned needs a base with factors (sprites, color_sprites); {cfg.base.name} has {describe(base.spec)}"
        )
    attributes = attributes_of(base[factors], base.spec[factors].names)
    tokens = tokenize(captions(attributes, seed=cfg.seed * 2 + _SPLIT_STREAM[split]))
    clash = sorted(set(ATTRIBUTES) & set(base.spec))
    if clash:
        raise ConfigError(f"captioned adds fields {list(ATTRIBUTES)}, but its base already has {clash}")
    stream = cfg.seed * 2 + _SPLIT_STREAM[split]
    shapes = getattr(cfg.base, "shapes", None) or int(attributes[:, 0].max()) + 1
    wrong = one_attribute_changed(attributes, torch.Generator().manual_seed(stream), shapes)
    spec: Spec = {
        **base.spec,
        "caption": Tokens(VOCABULARY, MAX_WORDS, TEMPLATES[0]),
        "caption_one_off": Tokens(VOCABULARY, MAX_WORDS, TEMPLATES[0]),
        **{name: Classes(words) for name, words in ATTRIBUTES.items()},
    }
    fields = {
        **base.fields,
        "caption": tokens,
        "caption_one_off": tokenize(captions(wrong, seed=stream + 1000)),
        **{name: attributes[:, k] for k, name in enumerate(ATTRIBUTES)},
    }
    return TensorDataset("captioned", spec, fields)
