"""Objectives: one Step per model family. Importing registers them."""

from __future__ import annotations

from genlab.training.objectives import gan, vae  # noqa: F401  (registers objectives)
from genlab.training.objectives import classifier  # noqa: F401  (registers the classifier objective)
from genlab.training.objectives import pix2pix  # noqa: F401  (registers the image-to-image objective)
from genlab.training.objectives import cyclegan  # noqa: F401  (registers the unpaired translation objective)
from genlab.training.objectives import contrastive  # noqa: F401  (registers the joint embedding objective)
