"""Metrics of class-conditional models, on samples of balanced, known classes.

- ``cond_acc``: the digit classifier's accuracy on samples generated for each class.
- ``intra_fid``: the mean over classes of the FID between class-k samples and class-k real
  images (Miyato & Koyama 2018), in the chosen feature space.
- ``cas``: the Classification Accuracy Score (Ravuri & Vinyals 2019): a classifier trained
  by genlab's own loop on generated samples only, tested on the real test set.
- ``truncation``: FID, precision and recall as the latent truncation tightens (Brock et al.
  2019's trade-off curve), one table and one PNG.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from genlab.config import config_from_dict
from genlab.data.base import Classes
from genlab.data.tensors import save_tensors
from genlab.metrics import fid, precision_recall
from genlab.metrics.classifier_features import classifier_accuracy, mnist_extractor
from genlab.metrics.evaluate import EvalContext, sample_images
from genlab.metrics.features import extract_features
from genlab.metrics.registry import register_metric
from genlab.models.protocols import Conditional
from genlab.training.loop import train

CAS_EPOCHS = 5  # passes over the generated set; the real-data recipe uses 3 over 60,000 digits
TRUNCATIONS = (None, 2.0, 1.5, 1.0, 0.5)  # None: the untruncated prior


def _labels(ctx: EvalContext) -> Tensor:
    """The samples' classes: these metrics need ("labels") a conditional model, which has them."""
    assert ctx.sample_labels is not None
    return ctx.sample_labels


def _num_classes(ctx: EvalContext) -> int:
    assert isinstance(ctx.model, Conditional)  # as for _labels
    return ctx.model.num_classes


def _predicted(ctx: EvalContext) -> Tensor:
    if ctx.settings.features == "mnist":  # the sample features already hold the classifier's logits
        return ctx.sample_features["logits"].argmax(1)
    return extract_features(ctx.classifier, ctx.samples, ctx.settings.batch_size, ctx.settings.device)["logits"].argmax(
        1
    )


@register_metric("cond_acc", needs=("samples", "labels", "classifier"))
def conditional_accuracy(ctx: EvalContext) -> dict:
    correct = (_predicted(ctx) == _labels(ctx)).double()
    per_class = [float(correct[_labels(ctx) == k].mean()) for k in range(_num_classes(ctx))]
    ctx.notes.append(
        f"cond_acc: {len(correct)} samples, classes 0..{_num_classes(ctx) - 1} in turn, "
        "judged by the genlab digit classifier"
    )
    return {"conditional_accuracy": float(correct.mean()), "conditional_accuracy_per_class": per_class}


@register_metric("intra_fid", needs=("samples", "labels", "features"))
def intra_class_fid(ctx: EvalContext) -> dict:
    layer = ctx.layer("fid")
    fake, real = ctx.sample_features[layer], ctx.reference_features[layer]
    real_labels = ctx.reference_data["label"]
    per_class = [fid.fid(fake[_labels(ctx) == k], real[real_labels == k])["fid"] for k in range(_num_classes(ctx))]
    ctx.notes.append(
        f"intra_fid: per class, {len(fake) // _num_classes(ctx)} samples against that class's "
        f"{ctx.settings.reference_split} images; small per-class sets bias FID upwards"
    )
    return {"intra_fid": sum(per_class) / len(per_class), "intra_fid_per_class": per_class}


@register_metric("cas", needs=("samples", "labels"))
def classification_accuracy_score(ctx: EvalContext) -> dict:
    folder = ctx.out_dir / "cas"
    folder.mkdir(parents=True, exist_ok=True)
    label = ctx.test_data.spec["label"]
    assert isinstance(label, Classes)  # needs=("labels"): class-labelled data
    names = label.names
    data_file = save_tensors(folder / "generated.safetensors", ctx.samples, ctx.sample_labels, names)
    config = config_from_dict(
        {
            "name": "cas-classifier",
            "data": {"name": "tensors", "path": str(data_file)},
            "model": {"name": "mnist_classifier"},
            "objective": {"name": "classifier"},
            "train": {
                "kimg": CAS_EPOCHS * len(ctx.samples) / 1000,
                "batch_size": 128,
                "seed": ctx.settings.seed,
                "out_dir": str(folder),
                "progress_bar": False,
                "tensorboard": False,
                "log_every_kimg": len(ctx.samples) / 1000,
                "snapshot_every_kimg": 0,
                "checkpoint_every_kimg": 0,
                "lr_schedule": {"kind": "cosine"},
            },
        },
        source="cas",
    )
    run_dir = train(config)
    accuracy = classifier_accuracy(mnist_extractor(run_dir), ctx.test, ctx.test_data["label"])
    ctx.notes.append(
        f"cas: a mnist_classifier trained {CAS_EPOCHS} epochs on the {len(ctx.samples)} samples alone "
        f"({run_dir}), tested on all {len(ctx.test)} real test images"
    )
    return {"cas": accuracy}


@register_metric("truncation", needs=("samples", "features"))
def truncation_curve(ctx: EvalContext) -> dict:
    from genlab.plotting import draw_curves

    layer, real = ctx.layer("fid"), ctx.reference_features[ctx.layer("fid")]
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(ctx.settings.seed))[: ctx.settings.n]
    rows: list[dict[str, Any]] = []
    for t in TRUNCATIONS:
        images = ctx.samples if t is None else sample_images(ctx.model, ctx.settings.n, ctx.settings.seed, truncation=t)
        feats = (
            ctx.sample_features[layer]
            if t is None
            else extract_features(ctx.extractor, images, ctx.settings.batch_size, ctx.settings.device)[layer]
        )
        rows.append({"truncation": t, **fid.fid(feats, real), **precision_recall.precision_recall(feats, real[pick])})
    labels = ["none" if r["truncation"] is None else f"{r['truncation']:g}" for r in rows]
    draw_curves(
        labels,
        {k: [r[k] for r in rows] for k in ("fid", "precision", "recall")},
        "latent truncation",
        ctx.out_dir / "truncation.png",
    )
    ctx.notes.append(
        f"truncation: {ctx.settings.n} samples per threshold (values beyond +-t redrawn); "
        "truncation.png plots FID, precision and recall"
    )
    return {"truncation_curve": rows}
