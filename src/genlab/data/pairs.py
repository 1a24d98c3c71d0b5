"""Image-to-image pairs built from any image set, and the ``pairs`` dataset that nests one.

Each builder is a pure function of a uint8 image batch ``[N, C, H, W]`` returning uint8
``(source, target)``, source -> target being the A -> B task of pix2pix (Isola et al.
2017): edges -> image (Canny per channel), grey -> colour, low -> full resolution, masked -> full
(inpainting), label map -> image, previous -> next frame. Sources keep their natural
channels: edge maps and grey images are 1-channel, label maps are rendered in RGB.

``{name: pairs, base: {name: color_sprites, ...}, kind: edges, direction: AtoB}`` gives
fields ``source`` and ``target`` (swapped by ``BtoA``) and keeps the base's other fields
(label, factors, segmentation) of the example the target shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.config import SEED, DataConfig, Range
from genlab.data.base import Image, LabelMap, Spec, TensorDataset, describe, sample_field
from genlab.data.color_sprites import ColorSpritesConfig
from genlab.errors import ConfigError
from genlab.registry import DATASETS, register_dataset

Pair = tuple[Tensor, Tensor]
SR_FACTOR = 4
HOLE_FILL = 128  # value of masked pixels: mid grey, about 0 in the models' [-1, 1]
_SPLIT_STREAM = {"train": 0, "test": 1}


# ----------------------------------------------------------------------------- builders


def luma(images: Tensor) -> Tensor:
    """ITU-R 601 grey, as PIL's "L": uint8 [N, 3, H, W] -> uint8 [N, 1, H, W] (grey passes through)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def edges(images: Tensor, sigma: float = 1.0) -> Pair:
    """Canny edges, drawn black (0) on white (255) as in edges2shoes: source uint8 [N, 1, H, W];
    target the images. A pixel is an edge in any colour channel, so a shape of the same grey as
    its background keeps its outline. ``sigma`` is Canny's Gaussian in pixels."""
    from skimage.feature import canny

    planes = images.numpy().astype(np.float64) / 255.0
    found = np.stack([np.any([canny(plane, sigma=sigma) for plane in image], axis=0) for image in planes])
    return torch.from_numpy(np.where(found, 0, 255).astype(np.uint8))[:, None], images


def grey_to_color(images: Tensor) -> Pair:
    """Source the luma uint8 [N, 1, H, W]; target the colour images [N, 3, H, W]."""
    if images.shape[1] != 3:
        raise ConfigError("grey2color pairs need colour images; the base data is grey (set its channels: 3)")
    return luma(images), images


def low_resolution(images: Tensor, factor: int = SR_FACTOR) -> Pair:
    """Source: each image averaged down by ``factor`` (area), then bicubic back up to [N, C, H, W],
    so source and target shapes match (the SRCNN convention); target the images."""
    h, w = images.shape[-2:]
    if h % factor or w % factor:
        raise ConfigError(
            f"sr{factor}x pairs need image sides divisible by {factor}, got {h}x{w}; change the base's image_size"
        )
    small = F.avg_pool2d(images.float(), factor)
    up = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    return up.round_().clamp_(0, 255).to(torch.uint8), images


def random_holes(rng: np.random.Generator, n: int, height: int, width: int) -> Tensor:
    """Rectangles int64 [n, 4] (top, left, bottom, right): each side a quarter to a half of the image's."""
    sides = [rng.integers(max(1, s // 4), max(1, s // 2) + 1, size=n) for s in (height, width)]
    tops = rng.integers(0, height - sides[0] + 1)
    lefts = rng.integers(0, width - sides[1] + 1)
    return torch.from_numpy(np.stack([tops, lefts, tops + sides[0], lefts + sides[1]], axis=1).astype(np.int64))


def inpaint(images: Tensor, holes: Tensor) -> Pair:
    """Source: the images with holes [N, 4] (from :func:`random_holes`) filled with HOLE_FILL; target the images."""
    rows = torch.arange(images.shape[-2])[None, :, None]
    cols = torch.arange(images.shape[-1])[None, None, :]
    top, left, bottom, right = (holes[:, i, None, None] for i in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # [N, H, W]
    return images.masked_fill(inside[:, None], HOLE_FILL), images


def _voc_palette() -> Tensor:
    """The PASCAL VOC colour map: class k -> the bits of k spread over R, G, B from the top bit down."""
    k = torch.arange(256)
    out = torch.zeros(256, 3, dtype=torch.long)
    for bit in range(8):
        for channel in range(3):
            out[:, channel] |= ((k >> (3 * bit + channel)) & 1) << (7 - bit)
    return out.to(torch.uint8)


PALETTE = _voc_palette()  # uint8 [256, 3]: 0 black, 1 dark red, 2 dark green, 3 olive, 4 navy, ...
_PALETTE_KEYS = PALETTE.long() @ torch.tensor([1 << 16, 1 << 8, 1])


def palette_image(labels: Tensor) -> Tensor:
    """Label maps uint8/int64 [N, 1, H, W] or [N, H, W] -> RGB uint8 [N, 3, H, W] in PALETTE colours."""
    labels = labels[:, 0] if labels.dim() == 4 else labels
    return PALETTE[labels.long()].permute(0, 3, 1, 2).contiguous()


def labels_from_palette(images: Tensor) -> Tensor:
    """The inverse of :func:`palette_image`: RGB uint8 [N, 3, H, W] -> uint8 [N, 1, H, W]."""
    keys = (images.long() * torch.tensor([1 << 16, 1 << 8, 1]).view(1, 3, 1, 1)).sum(1)
    order = torch.argsort(_PALETTE_KEYS)
    position = torch.searchsorted(_PALETTE_KEYS[order], keys).clamp_(max=255)
    found = order[position]
    if not torch.equal(_PALETTE_KEYS[found], keys):
        raise ValueError("these images hold colours outside the label palette")
    return found.to(torch.uint8)[:, None]


def label_pairs(labels: Tensor, images: Tensor) -> Pair:
    """Source: label maps [N, 1, H, W] rendered with PALETTE (RGB); target the images."""
    return palette_image(labels), images


def next_frame(frames: Tensor) -> Pair:
    """Sequences uint8 [S, T, C, H, W] -> source frames 0..T-2 and target frames 1..T-1, each
    [S * (T - 1), C, H, W] in sequence order."""
    c, h, w = frames.shape[2:]
    return frames[:, :-1].reshape(-1, c, h, w), frames[:, 1:].reshape(-1, c, h, w)


# ----------------------------------------------------------------------------- the dataset

Kind = Literal["edges", "grey2color", "sr4x", "inpaint", "labels", "next_frame"]
KINDS: tuple[str, ...] = get_args(Kind)


@dataclass
class PairsConfig(DataConfig):
    """Keys of the ``pairs`` dataset: ``base`` is any data config with one image field."""

    base: DataConfig = field(default_factory=lambda: ColorSpritesConfig(name="color_sprites"))
    kind: Kind = "edges"
    direction: Literal["AtoB", "BtoA"] = "AtoB"  # BtoA swaps source and target
    edge_sigma: float = 1.0  # Canny's Gaussian in pixels (kind: edges)
    seed: int = 0  # where the holes are (kind: inpaint), per split

    bounds: ClassVar[dict[str, Range]] = {"edge_sigma": Range(0, low_open=True), "seed": SEED}
    # Inpainting, the kind the seed drives; the base's label map and factors come along as fields.
    example: ClassVar[dict] = {"kind": "inpaint", "base": {"name": "color_sprites", "n_train": 64, "n_test": 16}}


@register_dataset("pairs", PairsConfig)
def build(cfg: PairsConfig, split: str) -> TensorDataset:
    """``source`` and ``target`` uint8 images plus the base's non-image fields."""
    base = DATASETS.get(cfg.base.name).builder(cfg.base, split)
    key = image_key(base.spec, f"pairs (base {cfg.base.name})")
    images = base[key]
    rows = torch.arange(len(base))  # the base example each pair's target shows
    if cfg.kind == "next_frame":
        frames = getattr(cfg.base, "frames", 1)
        if frames < 2:
            raise ConfigError(
                f"pairs kind next_frame needs sequences; set data.base.frames to 2 or more "
                f"(color_sprites), now {cfg.base.name} has frames={frames}"
            )
        source, target = next_frame(images.view(-1, frames, *images.shape[1:]))
        rows = rows.view(-1, frames)[:, 1:].reshape(-1)
        if cfg.direction == "BtoA":
            rows = rows - 1
    elif cfg.kind == "labels":
        source, target = label_pairs(base[_label_map_key(base.spec, cfg.base.name)], images)
    elif cfg.kind == "inpaint":
        rng = np.random.default_rng([cfg.seed, _SPLIT_STREAM[split]])
        source, target = inpaint(images, random_holes(rng, len(images), *images.shape[-2:]))
    elif cfg.kind == "edges":
        source, target = edges(images, cfg.edge_sigma)
    elif cfg.kind == "grey2color":
        source, target = grey_to_color(images)
    else:
        source, target = low_resolution(images)
    if cfg.direction == "BtoA":
        source, target = target, source
    spec: Spec = {"source": Image(*source.shape[1:]), "target": Image(*target.shape[1:])}
    fields = {"source": source, "target": target}
    for name, f in base.spec.items():
        if name != key:
            spec[name], fields[name] = f, base[name][rows]
    return TensorDataset("pairs", spec, fields)


def image_key(spec: Spec, user: str) -> str:
    """The name of the one image field of a base dataset, or a ConfigError naming what it has."""
    try:
        key = sample_field(spec)
    except ConfigError:
        key = ""
    if not isinstance(spec.get(key), Image):
        raise ConfigError(
            f"{user} needs data with one image field; it has {describe(spec)}. "
            "Paired data (source/target) is used directly, not nested"
        )
    return key


def _label_map_key(spec: Spec, name: str) -> str:
    found = [k for k, f in spec.items() if isinstance(f, LabelMap)]
    if len(found) != 1:
        raise ConfigError(
            f"pairs kind labels needs a base with a per-pixel label map (e.g. color_sprites); "
            f"{name} has {describe(spec)}"
        )
    return found[0]
