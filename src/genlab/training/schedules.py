"""Learning-rate schedules as pure functions of training progress (images seen)."""

from __future__ import annotations

import math

from genlab.config import ScheduleConfig


def lr_factor(schedule: ScheduleConfig, images_seen: int, total_images: int) -> float:
    """The factor on an optimiser's base learning rate after ``images_seen`` of ``total_images``."""
    kimg, total_kimg = images_seen / 1000, max(total_images / 1000, 1e-12)
    warmup = min(1.0, kimg / schedule.warmup_kimg) if schedule.warmup_kimg > 0 else 1.0
    end = schedule.final_fraction
    if schedule.kind == "linear":
        start = min(schedule.decay_start_kimg, total_kimg)
        progress = 0.0 if total_kimg <= start else min(1.0, max(0.0, (kimg - start) / (total_kimg - start)))
        decay = 1.0 - (1.0 - end) * progress
    elif schedule.kind == "cosine":
        decay = end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, kimg / total_kimg)))
    else:
        decay = 1.0
    return warmup * decay
