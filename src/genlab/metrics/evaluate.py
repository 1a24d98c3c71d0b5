"""One evaluation of a trained run: samples, real splits and features computed once,
shared by every requested metric, and summarised in an eval card.

The metrics (``genlab eval --metrics``), each registered with what it needs: fid, kid, is,
pr (in the chosen feature space), parzen (pixel space), nll (models with an encoder: ELBO
and importance-weighted NLL), nn (memorisation), modes (class coverage via the digit
classifier; data sets with a digit per channel declare their modes, such as Stacked MNIST's 1000).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor, nn

from genlab.config import Config
from genlab.data import TensorDataset, load_dataset
from genlab.errors import ConfigError
from genlab.images import to_model, to_uint8
from genlab.metrics import card as card_mod
from genlab.metrics import coverage, fid, inception_score, kid, nearest_neighbours, parzen, precision_recall
from genlab.metrics.classifier_features import mnist_extractor, sprite_judge, sprites_extractor
from genlab.metrics.features import Extractor, extract_features
from genlab.metrics.inception import inception_extractor
from genlab.metrics.likelihood import bound_likelihood, evaluate_likelihood, exact_likelihood
from genlab.metrics.reference import reference_features
from genlab.metrics.registry import NEEDS, get_metric, register_metric
from genlab.metrics.settings import EvalSettings
from genlab.models.protocols import (
    Conditional,
    ExactLikelihood,
    IterativeSampler,
    LatentSampler,
    LikelihoodBound,
    is_conditional,
)

SAMPLE_BATCH = 500  # images drawn per model call; fixed so that a seed always gives the same samples
NN_SAMPLES = 1000  # samples (and test images) in the memorisation check
NN_PNG_ROWS = 16


def sample_labels(model: nn.Module, n: int) -> Tensor | None:
    """Balanced classes ``0, 1, ..., K-1, 0, ...`` for a conditional model's ``n`` samples, else None."""
    if not is_conditional(model):
        return None
    assert isinstance(model, Conditional)  # is_conditional checked it
    return torch.arange(n) % model.num_classes


def sample_images(model: nn.Module, n: int, seed: int, truncation: float | None = None) -> Tensor:
    """``n`` samples of ``model`` as uint8 ``[n, C, H, W]``, deterministic in ``seed``; a conditional
    model's are of the classes :func:`sample_labels` gives."""
    assert isinstance(model, LatentSampler), f"a {type(model).__name__} has no samples"
    generator = torch.Generator().manual_seed(seed)
    labels = sample_labels(model, n)
    chunks = [
        to_uint8(
            model.sample(
                min(SAMPLE_BATCH, n - start),
                generator=generator,
                truncation=truncation,
                labels=None if labels is None else labels[start : start + SAMPLE_BATCH],
            )
        )
        for start in range(0, n, SAMPLE_BATCH)
    ]
    images = torch.cat(chunks)
    if images.dim() != 4:
        raise ConfigError(
            f"the model makes {tuple(images.shape[1:])}-shaped points, not images; image metrics do not apply"
        )
    return images


class EvalContext:
    """Inputs shared between metrics, each computed on first use."""

    def __init__(self, model: nn.Module, config: Config, settings: EvalSettings, out_dir: Path) -> None:
        self.model, self.config, self.settings, self.out_dir = model, config, settings, out_dir
        self.notes: list[str] = []  # protocol details the card should state

    @cached_property
    def samples(self) -> Tensor:
        return sample_images(self.model, self.settings.n, self.settings.seed)

    @cached_property
    def sample_labels(self) -> Tensor | None:
        """The classes of :attr:`samples` (conditional models), else None."""
        return sample_labels(self.model, self.settings.n)

    @cached_property
    def train_data(self) -> TensorDataset:
        return load_dataset(self.config.data, "train")

    @cached_property
    def test_data(self) -> TensorDataset:
        return load_dataset(self.config.data, "test")

    @property
    def train(self) -> Tensor:
        """The training split's images, uint8 ``[N, C, H, W]``."""
        return self.train_data["image"]

    @property
    def test(self) -> Tensor:
        """The test split's images, uint8 ``[N, C, H, W]``."""
        return self.test_data["image"]

    @property
    def reference_data(self) -> TensorDataset:
        return self.train_data if self.settings.reference_split == "train" else self.test_data

    @property
    def reference(self) -> Tensor:
        return self.reference_data["image"]

    @cached_property
    def extractor(self) -> Extractor:
        if self.settings.features == "inception":
            return inception_extractor(self.settings.inception_weights)
        if self.settings.features == "sprites":
            return sprites_extractor(self.settings.classifier, sprite_judge(self.config.data))
        return self.classifier

    @cached_property
    def classifier(self) -> Extractor:
        return mnist_extractor(self.settings.classifier)

    @cached_property
    def sample_features(self) -> dict[str, Tensor]:
        return extract_features(self.extractor, self.samples, self.settings.batch_size, self.settings.device)

    def real_features(self, images: Tensor, split: str) -> dict[str, Tensor]:
        return reference_features(
            self.extractor, images, self.config.data.name, split, self.settings.batch_size, self.settings.device
        )

    @cached_property
    def reference_features(self) -> dict[str, Tensor]:
        return self.real_features(self.reference, self.settings.reference_split)

    def layer(self, metric: str) -> str:
        return self.extractor.layers[metric]

    def computed(self, name: str) -> bool:
        """Whether the cached property ``name`` was needed by the metrics run so far."""
        return name in self.__dict__


def check_needs(ctx: EvalContext) -> None:
    """Raise for the first requested metric the run cannot give, before any is computed.

    The model's capabilities are checked first; a feature network that cannot be loaded
    raises its own DataError.
    """
    for need, requirement in NEEDS.items():
        for name in ctx.settings.metrics:
            if need in get_metric(name).needs and not requirement.met(ctx):
                raise ConfigError(
                    f"metric {name!r} needs {requirement.description}, which this "
                    f"{type(ctx.model).__name__} run does not have"
                )


def card_folder(settings: EvalSettings, model: nn.Module) -> str:
    """The name of an evaluation's folder under a run's ``eval/``: its feature space, n and seed, and a
    diffusion model's sampling settings (``mnist-n10000-seed0-euler16``)."""
    tag = f"{settings.features}-n{settings.n}-seed{settings.seed}"
    if not isinstance(model, IterativeSampler):
        return tag
    guided = f"-guidance{model.guidance:g}" if model.guidance != 1 else ""
    return f"{tag}-{model.sampler}{model.steps}{guided}"


def evaluate(
    model: nn.Module,
    config: Config,
    settings: EvalSettings,
    out_dir: Path,
    run: str = "",
    command: str = "",
    progress: Callable[[int, int, str], None] | None = None,
    checkpoint: Path | None = None,
) -> tuple[dict, dict]:
    """Run ``settings.metrics`` on ``model`` (trained with ``config``; ``run`` names it in the card, ``command``
    the command line that asked for it, ``checkpoint`` the weights loaded). ``progress(done, total, metric)`` is
    told before each metric starts.

    Writes PNGs and the eval card (card.json, card.md) into ``out_dir``.
    Returns (flat results under constant keys, the card).
    """
    ctx = EvalContext(model, config, settings, out_dir)
    check_needs(ctx)
    if isinstance(model, IterativeSampler):
        ctx.notes.append(
            f"samples drawn with {model.sampler}, {model.steps} steps, guidance {model.guidance:g}: "
            f"{model.evaluations} network evaluations per sample"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for done, name in enumerate(settings.metrics):
        if progress is not None:
            progress(done, len(settings.metrics), name)
        results |= get_metric(name).compute(ctx)
    card = card_mod.build_card(
        run=run,
        dataset=config.data.name,
        settings=settings,
        results=results,
        image_shape=tuple(ctx.samples.shape[1:]) if ctx.computed("samples") else None,
        extractor=ctx.extractor if ctx.computed("extractor") else None,
        feature_dim=ctx.sample_features[ctx.layer("fid")].shape[1] if ctx.computed("sample_features") else None,
        n_reference=len(ctx.reference) if ctx.computed("reference_features") else None,
        notes=ctx.notes,
        command=command,
        checkpoint=checkpoint,
    )
    card_mod.write_card(card, out_dir)
    return results, card


# ----------------------------------------------------------------------------- metrics


@register_metric("fid", needs=("samples", "features"))
def _fid(ctx: EvalContext) -> dict:
    layer = ctx.layer("fid")
    return fid.fid(ctx.sample_features[layer], ctx.reference_features[layer])


@register_metric("kid", needs=("samples", "features"))
def _kid(ctx: EvalContext) -> dict:
    layer = ctx.layer("kid")
    return kid.kid(ctx.sample_features[layer], ctx.reference_features[layer], seed=ctx.settings.seed)


@register_metric("is", needs=("samples", "features"))
def _is(ctx: EvalContext) -> dict:
    return inception_score.inception_score(ctx.sample_features[ctx.layer("is")], seed=ctx.settings.seed)


@register_metric("pr", needs=("samples", "features"))
def _pr(ctx: EvalContext) -> dict:
    # Equal set sizes, as in Kynkäänniemi et al.: the k-NN radii depend on the density of points.
    layer = ctx.layer("pr")
    real = ctx.reference_features[layer]
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(ctx.settings.seed))[: len(ctx.samples)]
    ctx.notes.append(
        f"pr: {len(pick)} reference images drawn at random (seed {ctx.settings.seed}) to match the sample count"
    )
    return precision_recall.precision_recall(ctx.sample_features[layer], real[pick])


@register_metric("parzen", needs=("samples",))
def _parzen(ctx: EvalContext) -> dict:
    train = ctx.train
    # The 2014 protocol: sigma chosen on 1,000 images of the last 10,000 training images.
    start = max(0, len(train) - 10_000)
    valid = train[start : start + parzen.PROTOCOL_VALID_SIZE]
    ctx.notes.append(
        f"parzen: {len(ctx.samples)} samples in [0, 1] pixel space; sigma from 10 values log-spaced in [0.1, 1] "
        f"chosen on training images {start}..{start + len(valid) - 1}; scored on all {len(ctx.test)} test images"
    )
    return parzen.parzen_window(
        parzen.to_parzen_space(ctx.samples), parzen.to_parzen_space(valid), parzen.to_parzen_space(ctx.test)
    )


@register_metric("nll", needs=("likelihood",))
def _nll(ctx: EvalContext) -> dict:
    """Exact for a model that has log p(x) (of x given its test label when it is conditional), the
    sampling-free bound of a VQ-VAE, a VAE's ELBO and importance-weighted bound otherwise."""
    images = to_model(ctx.test[: ctx.settings.n]).to(ctx.settings.device)
    labels = ctx.test_data["label"][: len(images)].to(images.device) if is_conditional(ctx.model) else None
    if isinstance(ctx.model, ExactLikelihood):
        return exact_likelihood(ctx.model, images, labels)
    if isinstance(ctx.model, LikelihoodBound):
        return bound_likelihood(ctx.model, images, labels)
    return evaluate_likelihood(ctx.model, images, ctx.settings.iw_k, seed=ctx.settings.seed)


@register_metric("nn", needs=("samples", "features"))
def _nn(ctx: EvalContext) -> dict:
    n = min(NN_SAMPLES, len(ctx.samples), len(ctx.test))
    samples, test, train = ctx.samples[:n], ctx.test[:n], ctx.train
    flat = nearest_neighbours.flatten_pixels
    d_sample, idx = nearest_neighbours.nearest(flat(samples), flat(train))
    d_test, _ = nearest_neighbours.nearest(flat(test), flat(train), k=1)
    result = nearest_neighbours.distance_report(d_sample[:, 0], d_test[:, 0], prefix="nn_pixel_")
    nearest_neighbours.save_neighbours_png(
        samples[:NN_PNG_ROWS], train, idx[:NN_PNG_ROWS], ctx.out_dir / "nn_pixel.png"
    )

    layer = ctx.layer("fid")
    train_feats = ctx.real_features(ctx.train, "train")[layer]
    test_feats = ctx.real_features(ctx.test, "test")[layer][:n]
    f_sample, f_idx = nearest_neighbours.nearest(ctx.sample_features[layer][:n], train_feats)
    f_test, _ = nearest_neighbours.nearest(test_feats, train_feats, k=1)
    result |= nearest_neighbours.distance_report(f_sample[:, 0], f_test[:, 0], prefix="nn_feature_")
    nearest_neighbours.save_neighbours_png(
        samples[:NN_PNG_ROWS], train, f_idx[:NN_PNG_ROWS], ctx.out_dir / "nn_features.png"
    )
    ctx.notes.append(
        f"nn: {n} samples and {n} test images against all {len(train)} training images, in pixel space and "
        f"the {ctx.extractor.name} '{layer}' feature space; PNGs nn_pixel.png and nn_features.png (sample | 3 nearest)"
    )
    return result


@register_metric("modes", needs=("samples", "classifier"))
def _modes(ctx: EvalContext) -> dict:
    x, digits = ctx.samples, ctx.classifier.module.classifier.num_classes
    num_modes = ctx.config.data.num_modes or digits  # declared by the data set's config
    if num_modes == digits:  # one digit per image, grey or replicated to RGB (the classifier averages the channels)
        mode = _predict(ctx, x)
    elif num_modes == digits ** x.shape[1]:  # one digit per channel (Stacked MNIST: 1000 modes)
        per_channel = torch.stack([_predict(ctx, x[:, c : c + 1]) for c in range(x.shape[1])], 1)
        mode = coverage.channel_modes(per_channel, digits)
    else:
        raise ConfigError(
            f"data {ctx.config.data.name!r} declares {num_modes} modes, but the digit classifier tells "
            f"{digits} per image or {digits ** x.shape[1]} over its {x.shape[1]} channels; "
            "the modes metric does not apply"
        )
    histogram = coverage.mode_histogram(mode, num_modes)
    return {**coverage.mode_coverage(histogram), "mode_histogram": histogram.tolist()}


def _predict(ctx: EvalContext, images: Tensor) -> Tensor:
    """The classifier's digit ``[N]`` for uint8 ``images``; reuses the sample features when they are its own."""
    if images is ctx.samples and ctx.settings.features == "mnist":
        return ctx.sample_features["logits"].argmax(1)
    return extract_features(ctx.classifier, images, ctx.settings.batch_size, ctx.settings.device)["logits"].argmax(1)
