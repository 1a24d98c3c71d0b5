"""Networks: plain nn.Modules, one file per family. Importing registers them."""

from __future__ import annotations

from torch import nn

from genlab.config import ModelConfig
from genlab.data.base import TensorDataset
from genlab.models import dcgan, gan_mlp, vae  # noqa: F401  (registers models)
from genlab.models import classifier  # noqa: F401  (registers the metrics' digit classifier)
from genlab.models import toy  # noqa: F401  (registers the toy-data GAN)
from genlab.registry import MODELS


def build_model(cfg: ModelConfig, data: TensorDataset) -> dict[str, nn.Module]:
    """Build the named modules of ``cfg`` (e.g. {"vae": ...} or {"G": ..., "D": ...})."""
    return MODELS.get(cfg.name).builder(cfg, data)
