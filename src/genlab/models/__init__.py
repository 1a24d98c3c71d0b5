"""Networks: plain nn.Modules, one file per family. Importing registers them.

A model builder reads only the data's spec and returns a factory per module role
(``{"vae": ...}`` or ``{"G": ..., "D": ...}``), so that training builds every role and
``genlab.load`` builds just the exported one.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from genlab.config import ModelConfig
from genlab.data.base import Classes, Image, Spec
from genlab.models import conditional, dcgan, gan_mlp, vae  # noqa: F401  (registers models)
from genlab.models import classifier  # noqa: F401  (registers the metrics' digit classifier)
from genlab.models import toy  # noqa: F401  (registers the toy-data GAN)
from genlab.models import pix2pix  # noqa: F401  (registers the image-to-image U-Net / PatchGAN)
from genlab.models import cyclegan  # noqa: F401  (registers the unpaired ResNet generators / PatchGANs)
from genlab.models import stylegan  # noqa: F401  (registers the style-based generator and its residual D)
from genlab.models import progan  # noqa: F401  (registers the progressively grown G and D)
from genlab.models import text2image  # noqa: F401  (registers the caption-conditioned GAN)
from genlab.models import text_embedding  # noqa: F401  (registers the joint caption-image embedding)
from genlab.registry import MODELS

ModuleFactories = dict[str, Callable[[], nn.Module]]


def build_model(cfg: ModelConfig, spec: Spec) -> ModuleFactories:
    """A factory per module role of ``cfg`` for data of ``spec``; config errors are raised here, before any is built."""
    return MODELS.get(cfg.name).builder(cfg, spec)


def build_modules(cfg: ModelConfig, spec: Spec) -> dict[str, nn.Module]:
    """Every module of ``cfg``, built in the builder's order (so a seed fixes all initial weights)."""
    return {role: make() for role, make in build_model(cfg, spec).items()}


DEFAULT_EXAMPLE_SPEC: Spec = {"image": Image(1, 32, 32), "label": Classes(tuple("0123456789"))}


def examples(name: str) -> list[tuple[ModelConfig, Spec]]:
    """The configs and data specs the shared model tests build for model ``name``.

    A model config sets ``example_spec`` where one 32-pixel grey channel with 10 classes
    does not fit it, and ``example_variants`` (overrides such as ``{"conditional": True}``)
    for variants that must pass the same contract.
    """
    cls = MODELS.get(name).config_cls
    spec = getattr(cls, "example_spec", DEFAULT_EXAMPLE_SPEC)
    return [(cls(name=name, **variant), spec) for variant in getattr(cls, "example_variants", ({},))]
