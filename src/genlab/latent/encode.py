"""Latents of real images through a model's encoder (VAEs): the posterior means of q(z | x)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.data.base import TensorDataset, sample_field
from genlab.errors import ConfigError
from genlab.models.protocols import Encoder, as_module, eval_mode, is_conditional

ENCODE_BATCH = 256  # images encoded per model call


def require_encoder(model: object) -> Encoder:
    """``model`` itself if it has an encoder, else a ConfigError that points to inversion."""
    if not isinstance(model, Encoder):
        raise ConfigError(
            f"a {type(model).__name__} has no encoder, so real images have no latents to read off; "
            "find them by optimisation instead (GAN inversion: genlab latent ... --invert)"
        )
    return model


def encode_means(model: Encoder, x: Tensor, labels: Tensor | None = None) -> Tensor:
    """Images ``[N, C, H, W]`` in [-1, 1] -> posterior means ``[N, D]``, in eval mode, without gradients."""
    device = next(as_module(model).parameters()).device
    with eval_mode(as_module(model)):
        chunks = [
            model.encode(
                x[i : i + ENCODE_BATCH].to(device), None if labels is None else labels[i : i + ENCODE_BATCH].to(device)
            )[0]
            for i in range(0, x.shape[0], ENCODE_BATCH)
        ]
    return torch.cat(chunks)


def encode_dataset(model: nn.Module, data: TensorDataset, n: int | None = None) -> Tensor:
    """Posterior means ``[n, D]`` of the first ``n`` (default all) examples of ``data``; a conditional
    model reads their ``label`` field too."""
    encoder = require_encoder(model)
    key = sample_field(data.spec)
    n = len(data) if n is None else min(n, len(data))
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, n, ENCODE_BATCH):
        batch = data.batch(slice(start, min(n, start + ENCODE_BATCH)), device)
        chunks.append(encode_means(encoder, batch[key], batch["label"] if is_conditional(model) else None))
    return torch.cat(chunks)
