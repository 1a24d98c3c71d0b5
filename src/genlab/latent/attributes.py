"""Attribute vectors from labelled data: the mean latent of the examples with attribute A minus
that of the examples with B (the DCGAN paper's "smiling" vector, Radford et al. 2016; White 2016).

Two kinds of labels give attributes:

- ground-truth factors (sprites): a factor's top third minus its bottom third, e.g. ``bigger``
  (scale), ``rotated`` (rotation), ``moved_right`` (pos_x), ``moved_down`` (pos_y);
- classes (MNIST): ``A-B``, the mean latent of class A minus that of class B, by name or index.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.data.base import Factors, TensorDataset, class_field
from genlab.errors import ConfigError
from genlab.latent.encode import encode_dataset

ALIASES = {"bigger": "scale", "rotated": "rotation", "moved_right": "pos_x", "moved_down": "pos_y"}
FRACTION = 1 / 3  # the top and bottom fraction of a factor compared
ATTRIBUTE_IMAGES = 5000  # examples encoded for an attribute vector


def attribute_vector(latents: Tensor, with_a: Tensor, with_b: Tensor) -> Tensor:
    """mean(latents[with_a]) - mean(latents[with_b]): latents ``[N, D]``, masks bool ``[N]`` -> ``[D]``."""
    if not with_a.any() or not with_b.any():
        raise ConfigError(
            f"an attribute vector needs examples of both sides; got {int(with_a.sum())} and {int(with_b.sum())}"
        )
    return latents[with_a].mean(0) - latents[with_b].mean(0)


def extremes(values: Tensor, fraction: float = FRACTION) -> tuple[Tensor, Tensor]:
    """Masks ``[N]`` of the top and the bottom ``fraction`` of ``values`` ``[N]`` (by quantile)."""
    low, high = torch.quantile(values.float(), torch.tensor([fraction, 1 - fraction]))
    return values >= high, values <= low


def factor_attribute(latents: Tensor, factor_values: Tensor, fraction: float = FRACTION) -> Tensor:
    """Mean latent of the top ``fraction`` of a factor minus that of its bottom: ``[N, D]``, ``[N]`` -> ``[D]``."""
    return attribute_vector(latents, *extremes(factor_values, fraction))


def class_means(latents: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean latent per class, ``[K, D]``; latents ``[N, D]``, labels int64 ``[N]``. A class without examples is NaN."""
    sums = torch.zeros(num_classes, latents.shape[1], dtype=latents.dtype).index_add_(0, labels.cpu(), latents.cpu())
    counts = torch.bincount(labels.cpu(), minlength=num_classes).to(latents.dtype)
    return sums / counts[:, None]


def _factor_names(data: TensorDataset) -> list[str]:
    field = data.spec["factors"]
    assert isinstance(field, Factors), f"the field 'factors' is {field}"
    return list(field.names)


def attribute_names(data: TensorDataset) -> list[str]:
    """The attributes ``data`` offers, for messages: aliases and continuous factors, and A-B for classes."""
    names: list[str] = []
    if "factors" in data.spec:
        factors = _factor_names(data)
        names += [a for a, f in ALIASES.items() if f in factors] + [f for f in factors if f != "shape"]
    classes = class_field(data.spec)
    if classes is not None:
        names.append(f"A-B for classes A, B of {', '.join(classes.names[:3])}, ...")
    return names


def data_attribute(model: nn.Module, data: TensorDataset, name: str, n: int = ATTRIBUTE_IMAGES) -> Tensor:
    """The attribute vector ``[D]`` called ``name`` (see the module docstring) from the first ``n``
    examples of ``data``, encoded to their posterior means."""
    factor = ALIASES.get(name, name)
    factor_names = _factor_names(data) if "factors" in data.spec else []
    classes = class_field(data.spec)
    if factor in factor_names:
        if factor == "shape":
            raise ConfigError(
                "shape is a category, not an amount: attribute vectors use the continuous factors "
                f"({', '.join(f for f in factor_names if f != 'shape')})"
            )
        latents = encode_dataset(model, data, n)
        return factor_attribute(latents.cpu(), data["factors"][: len(latents), factor_names.index(factor)])
    if classes is not None and "-" in name:
        a, b = (class_index(part, classes.names) for part in name.split("-", 1))
        latents = encode_dataset(model, data, n).cpu()
        labels = data["label"][: len(latents)]
        return attribute_vector(latents, labels == a, labels == b)
    offered = attribute_names(data)
    raise ConfigError(
        f"unknown attribute {name!r} for {data.name}; "
        + (f"choose from {', '.join(offered)}" if offered else "its data has no factors or classes")
    )


def class_index(text: str, names: tuple[str, ...]) -> int:
    """The index of class ``text``, given by name or by index."""
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < len(names):
        return int(text)
    raise ConfigError(
        f"unknown class {text!r}: the classes are {', '.join(names)} (or their indices 0..{len(names) - 1})"
    )
