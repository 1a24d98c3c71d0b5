"""Trajectory prediction's measures (Social GAN, Gupta et al. 2018): average and final displacement
error, best of k samples and of one, their spread, and the constant-velocity baseline.

ADE is the mean distance in metres between predicted and true positions over the predicted steps and
the people of a scene; FDE the same at the last step. Best of k, as the paper computes it: per scene,
the sample whose errors summed over the scene's people are least. The spread is the mean distance of
each person's k final positions from their mean: 0 for a model without noise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.data.base import trajectory_field
from genlab.metrics.evaluate import EvalContext
from genlab.metrics.registry import register_metric
from genlab.models.protocols import TrajectoryPredictor

SAMPLES = 20  # the paper's k


def constant_velocity(observed: Tensor, steps: int) -> Tensor:
    """Each person keeps their last observed step: [N, A, To, 2] -> [N, A, steps, 2]."""
    last = observed[:, :, -1:]
    velocity = last - observed[:, :, -2:-1]
    return last + velocity * torch.arange(1, steps + 1, dtype=observed.dtype, device=observed.device)[:, None]


def displacement_errors(predictions: Tensor, truth: Tensor) -> dict[str, float]:
    """predictions [K, N, A, T, 2], truth [N, A, T, 2] -> ADE and FDE in metres, best of K and of the first
    sample, and the spread of the K final positions."""
    distance = (predictions - truth).norm(dim=-1)  # [K, N, A, T]
    ade, fde = distance.mean(dim=(2, 3)), distance[..., -1].mean(dim=2)  # [K, N]: per scene
    final = predictions[..., -1, :]  # [K, N, A, 2]
    return {
        "ade_best": ade.min(dim=0).values.mean().item(),
        "fde_best": fde.min(dim=0).values.mean().item(),
        "ade_one": ade[0].mean().item(),
        "fde_one": fde[0].mean().item(),
        "spread": (final - final.mean(dim=0)).norm(dim=-1).mean().item(),
        "samples": predictions.shape[0],
    }


@register_metric("ade_fde", needs=("trajectories",))
def _ade_fde(ctx: EvalContext) -> dict:
    """ADE and FDE on up to ``n`` test scenes, best of 20 samples and of one, beside constant velocity's."""
    model = ctx.model
    assert isinstance(model, TrajectoryPredictor)  # the "trajectories" need
    key, field = trajectory_field(ctx.test_data.spec, "ade_fde")
    paths = ctx.test_data[key][: ctx.settings.n].to(ctx.settings.device)
    observed, truth = paths[:, :, : field.observed], paths[:, :, field.observed :]
    generator = torch.Generator().manual_seed(ctx.settings.seed)
    predictions = torch.cat([model.predict(chunk, SAMPLES, generator) for chunk in observed.split(500)], dim=1)
    baseline = displacement_errors(constant_velocity(observed, field.predicted)[None], truth)
    ctx.notes.append(
        f"ade_fde: {len(paths)} test scenes of {field.agents} people, {field.observed} observed and "
        f"{field.predicted} predicted steps; best of {SAMPLES} samples per scene (summed over its people)"
    )
    return displacement_errors(predictions, truth) | {
        "ade_constant_velocity": baseline["ade_one"],
        "fde_constant_velocity": baseline["fde_one"],
    }
