"""``tensors``: a dataset saved as one safetensors file of named fields, e.g. generated
samples with their labels (what the Classification Accuracy Score trains a classifier on).

The file holds ``image`` uint8 ``[N, C, H, W]`` and optionally ``label`` int64 ``[N]``; its
metadata ``classes`` lists the class names, comma-separated. Nothing is unpickled. Both
splits read the same file: it is data to train on, tested elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from genlab.config import EXAMPLE_FILES, DataConfig
from genlab.data.base import Classes, Image, Spec, TensorDataset
from genlab.errors import DataError
from genlab.registry import register_dataset


@dataclass
class TensorsConfig(DataConfig):
    name: str = "tensors"
    path: str = ""
    example: ClassVar[dict] = {"path": EXAMPLE_FILES}


def save_tensors(path: Path, images: torch.Tensor, labels: torch.Tensor | None, classes: tuple[str, ...] = ()) -> Path:
    """Write uint8 ``images`` (and int64 ``labels`` of ``classes``) as a ``tensors`` dataset file."""
    fields = {"image": images.contiguous()} | ({} if labels is None else {"label": labels.to(torch.int64).contiguous()})
    save_file(fields, path, metadata={"classes": ",".join(classes)})
    return path


@register_dataset("tensors", TensorsConfig)
def build(cfg: TensorsConfig, split: str) -> TensorDataset:
    path = Path(cfg.path).expanduser()
    try:
        with safe_open(path, framework="pt") as f:
            fields = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open is not iterable
            classes = tuple(c for c in (f.metadata() or {}).get("classes", "").split(",") if c)
    except (FileNotFoundError, SafetensorError, OSError) as err:
        raise DataError(
            f"data.path {path} is not a readable safetensors file ({err}); write one with "
            "genlab.data.tensors.save_tensors"
        ) from None
    if "image" not in fields or fields["image"].dtype != torch.uint8 or fields["image"].dim() != 4:
        raise DataError(f"{path} needs an 'image' field of uint8 [N, C, H, W]; it has {sorted(fields)}")
    spec: Spec = {"image": Image(*fields["image"].shape[1:])}
    if "label" in fields:
        spec["label"] = Classes(classes or tuple(str(k) for k in range(int(fields["label"].max()) + 1)))
    return TensorDataset("tensors", spec, {k: fields[k] for k in spec})
