"""What a dataset is to the rest of genlab: named, typed fields held in memory.

A *spec* names the fields of one example and says what each one is, e.g.
``{"image": Image(1, 28, 28), "label": Classes(("0", ..., "9"))}`` for MNIST,
``{"image": Image(...), "factors": Factors(("shape", "scale", ...))}`` for sprites, or
``{"points": Points(2), "label": Classes(...)}`` for a toy mixture, or
``{"paths": Trajectories(agents=4, steps=20, observed=8)}`` for crowds. Models are built from
the spec alone (never from the data), and run folders store it in ``data.json``, so a
saved run is rebuilt without loading or faking any data.

Storage types are fixed per kind: Image uint8 ``[N, C, H, W]`` in 0..255, Classes and Clusters int64
``[N]``, Factors float32 ``[N, K]``, Points float32 ``[N, D]``, LabelMap uint8 ``[N, 1, H, W]``
of class indices, Trajectories float32 ``[N, A, T, 2]`` in metres. :meth:`TensorDataset.batch` is
the one place where image fields become float in [-1, 1] (and label maps int64 ``[N, H, W]``, never
rescaled).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.images import to_model


@dataclass(frozen=True)
class Image:
    """An image field: uint8 ``[C, H, W]`` per example, [-1, 1] float in batches."""

    channels: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class Classes:
    """A class label: int64 in ``0 .. len(names) - 1``."""

    names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Clusters:
    """Pseudo-labels found by clustering the training images, not given with them: int64 ``[N]`` in
    ``0 .. len(shares) - 1``. ``shares`` is each cluster's fraction of the training split, the
    distribution a model conditioned on them draws its clusters from when it samples."""

    shares: tuple[float, ...]

    @property
    def num_clusters(self) -> int:
        return len(self.shares)


@dataclass(frozen=True)
class Factors:
    """Ground-truth factors of variation: float32 ``[K]`` per example, one per name."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class LabelMap:
    """A class per pixel (segmentation): uint8 ``[1, H, W]`` per example, int64 ``[H, W]`` in batches.

    Values are indices into ``names`` (e.g. 0 = "background"); unlike Image they are never rescaled.
    """

    names: tuple[str, ...]
    height: int
    width: int

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Points:
    """A point of a toy distribution: float32 ``[dim]``."""

    dim: int


@dataclass(frozen=True)
class Tokens:
    """A text as word indices: int64 ``[length]`` per example into ``vocabulary``, 0 (``vocabulary[0]``) padding.

    ``template``: for texts written from a grammar, one sentence of it with a ``{name}`` slot per
    :class:`Classes` field of the same data whose class names fill it (a caption form offers those words
    as choices); empty for free text.
    """

    vocabulary: tuple[str, ...]
    length: int
    template: str = ""


@dataclass(frozen=True)
class Trajectories:
    """The paths of ``agents`` people walking together: float32 ``[agents, steps, 2]`` per example, positions in
    metres at equal time steps; the first ``observed`` steps are what a predictor sees, the rest what it predicts."""

    agents: int
    steps: int
    observed: int

    @property
    def predicted(self) -> int:
        return self.steps - self.observed


Field = Image | Classes | Clusters | Factors | Points | LabelMap | Tokens | Trajectories
Spec = dict[str, Field]
_KINDS: dict[str, type] = {
    "image": Image,
    "classes": Classes,
    "clusters": Clusters,
    "factors": Factors,
    "points": Points,
    "label_map": LabelMap,
    "tokens": Tokens,
    "trajectories": Trajectories,
}
_DTYPES: dict[type, torch.dtype] = {
    Image: torch.uint8,
    Classes: torch.int64,
    Clusters: torch.int64,
    Factors: torch.float32,
    Points: torch.float32,
    LabelMap: torch.uint8,
    Tokens: torch.int64,
    Trajectories: torch.float32,
}


def field_shape(field: Field) -> tuple[int, ...]:
    """Shape of one example of ``field``."""
    if isinstance(field, Image):
        return field.shape
    if isinstance(field, Factors):
        return (len(field.names),)
    if isinstance(field, Points):
        return (field.dim,)
    if isinstance(field, LabelMap):
        return (1, field.height, field.width)
    if isinstance(field, Tokens):
        return (field.length,)
    if isinstance(field, Trajectories):
        return (field.agents, field.steps, 2)
    return ()


def spec_to_json(spec: Spec) -> dict[str, dict[str, Any]]:
    kind_of = {cls: kind for kind, cls in _KINDS.items()}
    return {
        name: {"kind": kind_of[type(f)], **{k: list(v) if isinstance(v, tuple) else v for k, v in vars(f).items()}}
        for name, f in spec.items()
    }


def spec_from_json(raw: dict[str, dict[str, Any]]) -> Spec:
    spec: Spec = {}
    for name, entry in raw.items():
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k != "kind"}
        spec[name] = _KINDS[entry["kind"]](**values)
    return spec


def describe(spec: Spec) -> str:
    """A one-line summary for messages, e.g. ``image: Image(1, 28, 28), label: 10 classes``."""
    parts = []
    for name, f in spec.items():
        if isinstance(f, Classes):
            parts.append(f"{name}: {f.num_classes} classes")
        elif isinstance(f, Clusters):
            parts.append(f"{name}: {f.num_clusters} clusters")
        elif isinstance(f, LabelMap):
            parts.append(f"{name}: LabelMap({f.num_classes} classes, {f.height}x{f.width})")
        elif isinstance(f, Tokens):
            parts.append(f"{name}: Tokens({len(f.vocabulary)} words, {f.length} long)")
        elif isinstance(f, Trajectories):
            parts.append(f"{name}: Trajectories({f.agents} agents, {f.observed} + {f.predicted} steps)")
        else:
            parts.append(f"{name}: {type(f).__name__}{field_shape(f)}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------- what models read


def image_field(spec: Spec, model: str, sizes: list[int] | None = None, key: str = "image") -> Image:
    """The image field ``key`` a model is built for, checked to be square and of a supported size."""
    field = spec.get(key)
    ok = isinstance(field, Image) and (sizes is None or (field.height == field.width and field.height in sizes))
    if not ok:
        wanted = f"square {key!r} images of {sizes} pixels" if sizes else f"an {key!r} image field"
        raise ConfigError(
            f"{model} needs {wanted}; the data has {describe(spec)}. "
            "Set data.image_size to a supported size or pick another model"
        )
    assert isinstance(field, Image)  # ok checked it
    return field


def class_field(spec: Spec, key: str = "label") -> Classes | None:
    """The class-label field, or None when the data has none."""
    field = spec.get(key)
    return field if isinstance(field, Classes) else None


def num_classes_for(spec: Spec, model: str, conditional: bool) -> int:
    """The number of classes a model conditions on: the data's labels', or 0 when unconditional."""
    if not conditional:
        return 0
    classes = class_field(spec)
    if classes is None:
        raise ConfigError(
            f"model.conditional=true needs class labels, but the data has none; set it to "
            f"false or train {model} on labelled data (mnist, image_folder with class folders)"
        )
    return classes.num_classes


def cluster_shares_for(spec: Spec, model: str, clusters: bool) -> tuple[float, ...]:
    """The shares of the data's clusters a model conditions on (``model.clusters=true``), or () when it does not."""
    if not clusters:
        return ()
    field = spec.get("cluster")
    if not isinstance(field, Clusters):
        raise ConfigError(
            f"model.clusters=true conditions {model} on k-means clusters of the images, but the data has "
            f"{describe(spec)}; set data.clusters (e.g. 50), or model.clusters=false"
        )
    return field.shares


def trajectory_field(spec: Spec, model: str) -> tuple[str, Trajectories]:
    """The data's one trajectories field (its name and kind), which a trajectory model is built for."""
    found = [(name, f) for name, f in spec.items() if isinstance(f, Trajectories)]
    if len(found) != 1:
        raise ConfigError(
            f"{model} needs one trajectories field (data: crowds, trajectory_folder); the data has {describe(spec)}"
        )
    return found[0]


def sample_field(spec: Spec) -> str:
    """The field an unconditional generative model learns: the data's one image or points field."""
    found = [name for name, f in spec.items() if isinstance(f, (Image, Points))]
    if len(found) != 1:
        raise ConfigError(f"expected exactly one image or points field, the data has {describe(spec)}")
    return found[0]


# ----------------------------------------------------------------------------- datasets and batches


class Batch(Mapping[str, Tensor]):
    """One minibatch as models see it: field name -> tensor, images float in [-1, 1]."""

    def __init__(self, fields: Mapping[str, Tensor]) -> None:
        self._fields = dict(fields)

    def __getitem__(self, key: str) -> Tensor:
        try:
            return self._fields[key]
        except KeyError:
            raise KeyError(f"this batch has no field {key!r}; it has {', '.join(self._fields)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        """Number of examples (not of fields)."""
        return next(iter(self._fields.values())).shape[0]

    def to(self, device: torch.device) -> Batch:
        return Batch({k: v.to(device, non_blocking=True) for k, v in self._fields.items()})

    def head(self, n: int) -> Batch:
        return Batch({k: v[:n] for k, v in self._fields.items()})


@dataclass(frozen=True)
class TensorDataset:
    """A whole split held in memory as named fields (no per-sample decoding while training)."""

    name: str
    spec: Spec
    fields: dict[str, Tensor]

    def __post_init__(self) -> None:
        if self.spec.keys() != self.fields.keys():
            raise ValueError(f"{self.name}: spec fields {list(self.spec)} differ from data fields {list(self.fields)}")
        sizes = {name: t.shape[0] for name, t in self.fields.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{self.name}: fields hold different numbers of examples: {sizes}")
        for name, field in self.spec.items():
            t = self.fields[name]
            if t.dtype != _DTYPES[type(field)] or tuple(t.shape[1:]) != field_shape(field):
                raise ValueError(
                    f"{self.name}: field {name!r} is {t.dtype} {tuple(t.shape[1:])}, "
                    f"expected {_DTYPES[type(field)]} {field_shape(field)} for {field}"
                )

    def __len__(self) -> int:
        return next(iter(self.fields.values())).shape[0]

    def __getitem__(self, key: str) -> Tensor:
        if key not in self.fields:
            raise ConfigError(f"{self.name} has no field {key!r}; it has {describe(self.spec)}")
        return self.fields[key]

    def batch(self, index: Tensor | slice, device: torch.device | str = "cpu") -> Batch:
        """The examples at ``index`` on ``device``; image fields converted uint8 -> [-1, 1] here only,
        label maps uint8 [N, 1, H, W] -> int64 class indices [N, H, W]."""
        out = {}
        for name, field in self.spec.items():
            t = self.fields[name][index].to(device, non_blocking=True)
            if isinstance(field, Image):
                t = to_model(t)
            elif isinstance(field, LabelMap):
                t = t[:, 0].long()
            out[name] = t
        return Batch(out)
