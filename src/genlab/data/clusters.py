"""k-means clusters of a data set's images, added as a ``cluster`` field for GANs conditioned on them
(``data.clusters=K`` with ``model.clusters=true``).

An unconditional GAN drifts between the modes of its data: on MNIST it draws some digits more
often than others, and in a digit classifier's features that imbalance alone costs as much FID as
poor drawing (docs/benchmarks.md, "GANs"). Conditioning G and D on clusters found without labels,
and drawing each cluster as often as the data holds it, fixes the share of every mode while the
model stays unconditional to its users: the cluster is part of its latent. Self-conditioned GANs
(Liu et al., CVPR 2020) cluster D's features and re-cluster as D learns; here the pixels are
clustered once, before training (scikit-learn's k-means++ and Lloyd's iterations), so the loop and
the step stay as they are.

The fit is on the training split and every split is assigned to the nearest centre, so a split's
clusters do not depend on which split is loaded first. They are recomputed in each process (about
8 s for MNIST's 60,000 images and 50 clusters on 2 cores) and are the same for a config on one
machine; another CPU's float rounding may move a few borderline images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from genlab.config import DataConfig
from genlab.data.base import Clusters, Image, TensorDataset, describe
from genlab.errors import ConfigError

SEED = 0  # k-means++'s seeding: one fixed clustering per config

Builder = Callable[[DataConfig, str], TensorDataset]


def _pixels(images: Tensor) -> Tensor:
    """uint8 ``[N, C, H, W]`` -> float32 ``[N, C*H*W]`` in [0, 1]: the space the clusters are found in."""
    return images.reshape(len(images), -1).float() / 255


def nearest_centres(images: Tensor, centres: Tensor) -> Tensor:
    """The index ``[N]`` of the nearest of ``centres: [K, D]`` to each of ``images: [N, C, H, W]`` (uint8)."""
    return torch.cdist(_pixels(images), centres).argmin(dim=1)


def kmeans_centres(images: Tensor, k: int) -> Tensor:
    """k-means centres ``[k, C*H*W]`` of uint8 ``images: [N, C, H, W]`` in [0, 1] pixel space."""
    from sklearn.cluster import KMeans  # here, not at the top: importing scikit-learn takes a second

    if len(images) < k:
        raise ConfigError(f"data.clusters={k} is more than the {len(images)} training images; lower it")
    fit = KMeans(k, n_init=1, random_state=SEED).fit(_pixels(images).numpy())
    return torch.from_numpy(np.asarray(fit.cluster_centers_, dtype=np.float32))


_FITS: dict[str, tuple[Tensor, tuple[float, ...]]] = {}  # by config: both splits and every evaluation share a fit


def _fit(cfg: DataConfig, train_images: Callable[[], Tensor]) -> tuple[Tensor, tuple[float, ...]]:
    """The centres of ``cfg``'s training images (``train_images()``, called only when there is no fit yet)
    and each cluster's share of them."""
    key = repr(cfg)
    if key not in _FITS:
        images = train_images()
        centres = kmeans_centres(images, cfg.clusters)
        counts = torch.bincount(nearest_centres(images, centres), minlength=cfg.clusters)
        _FITS[key] = centres, tuple((counts.double() / counts.sum()).tolist())
    return _FITS[key]


def check_nested(cfg: DataConfig, where: str = "data.") -> None:
    """ConfigError for ``clusters`` set on a data set inside another (a ``pairs`` or ``captioned`` base, an
    ``unpaired`` domain): the sets built from it keep only the fields they need, so it would be lost."""
    for field in dataclasses.fields(cfg):
        inner = getattr(cfg, field.name)
        if isinstance(inner, DataConfig):
            at = f"{where}{field.name}."
            if inner.clusters:
                raise ConfigError(
                    f"{at}clusters={inner.clusters}: clusters are added to the data set a model trains on, "
                    f"not to one inside it; set {at}clusters=0 (and {where}clusters for the outer set)"
                )
            check_nested(inner, at)


def with_clusters(data: TensorDataset, cfg: DataConfig, split: str, build: Builder) -> TensorDataset:
    """``data`` (the ``split`` of ``cfg``, which ``build`` makes) with a ``cluster`` field: int64 [N], each
    image's cluster of the ``cfg.clusters`` found in the training split (``data`` itself when it is that split,
    so that it is not built twice)."""
    if not isinstance(data.spec.get("image"), Image) or "cluster" in data.spec:
        raise ConfigError(
            f"data.clusters adds a 'cluster' field to a set of images; {cfg.name} has {describe(data.spec)}: "
            "set data.clusters=0"
        )
    centres, shares = _fit(cfg, lambda: (data if split == "train" else build(cfg, "train"))["image"])
    spec = {**data.spec, "cluster": Clusters(shares)}
    return TensorDataset(data.name, spec, {**data.fields, "cluster": nearest_centres(data["image"], centres)})
