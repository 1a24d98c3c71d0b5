"""One evaluation of a trained run: samples, real splits and features computed once,
shared by every requested metric, and summarised in an eval card.

Metric names (``genlab eval --metrics``): fid, kid, is, pr (in the chosen feature space),
parzen (pixel space), nll (VAEs: ELBO and importance-weighted NLL), nn (memorisation),
modes (class coverage via the digit classifier; the 1000 modes of ``stacked_mnist`` runs).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import Tensor, nn

from genlab.config import Config
from genlab.data import load_dataset, stacked
from genlab.data.base import TensorDataset
from genlab.errors import ConfigError
from genlab.images import to_model, to_uint8
from genlab.metrics import card as card_mod
from genlab.metrics import features as feat
from genlab.metrics import coverage, fid, inception_score, kid, nearest_neighbours, parzen, precision_recall

METRICS = ("fid", "kid", "is", "pr", "parzen", "nll", "nn", "modes")
SAMPLE_BATCH = 500  # images drawn per model call; fixed so that a seed always gives the same samples
NN_SAMPLES = 1000  # samples (and test images) in the memorisation check
NN_PNG_ROWS = 16


@dataclass(frozen=True)
class EvalSettings:
    metrics: tuple[str, ...]
    n: int = 10_000  # generated samples (and at most this many test images for nll)
    features: Literal["inception", "mnist"] = "mnist"
    reference_split: Literal["train", "test"] = "train"
    seed: int = 0
    batch_size: int = 250  # feature extraction
    device: str = "cpu"
    inception_weights: str | None = None
    classifier: str | None = None  # classifier run folder; None: the newest in the cache
    iw_k: int = 1000  # importance samples for nll

    def __post_init__(self) -> None:
        for name in self.metrics:
            if name not in METRICS:
                close = difflib.get_close_matches(name, METRICS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"unknown metric {name!r}{hint}; choose from {', '.join(METRICS)}")
        if self.n < 2:
            raise ConfigError(f"--n must be at least 2, got {self.n}")
        if self.features not in ("inception", "mnist") or self.reference_split not in ("train", "test"):
            raise ConfigError(f"features must be inception or mnist and the reference split train or test, "
                              f"got {self.features!r} and {self.reference_split!r}")


def sample_images(model: nn.Module, n: int, seed: int) -> Tensor:
    """``n`` samples of ``model`` as uint8 ``[n, C, H, W]``, deterministic in ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    chunks = [to_uint8(model.sample(min(SAMPLE_BATCH, n - start), generator=generator)) for start in range(0, n, SAMPLE_BATCH)]
    images = torch.cat(chunks)
    if images.dim() != 4:
        raise ConfigError(f"the model makes {tuple(images.shape[1:])}-shaped points, not images; image metrics do not apply")
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
    def train(self) -> TensorDataset:
        return load_dataset(self.config.data, "train")

    @cached_property
    def test(self) -> TensorDataset:
        return load_dataset(self.config.data, "test")

    @cached_property
    def reference(self) -> TensorDataset:
        return self.train if self.settings.reference_split == "train" else self.test

    @cached_property
    def extractor(self) -> feat.Extractor:
        if self.settings.features == "inception":
            return feat.inception_extractor(self.settings.inception_weights)
        return self.classifier

    @cached_property
    def classifier(self) -> feat.Extractor:
        return feat.mnist_extractor(self.settings.classifier)

    @cached_property
    def sample_features(self) -> dict[str, Tensor]:
        return feat.extract_features(self.extractor, self.samples, self.settings.batch_size, self.settings.device)

    def real_features(self, data: TensorDataset, split: str) -> dict[str, Tensor]:
        return feat.reference_features(self.extractor, data.x, self.config.data.name, split, self.settings.batch_size,
                                       self.settings.device)

    @cached_property
    def reference_features(self) -> dict[str, Tensor]:
        return self.real_features(self.reference, self.settings.reference_split)

    def layer(self, metric: str) -> str:
        return self.extractor.layers[metric]

    def computed(self, name: str) -> bool:
        """Whether the cached property ``name`` was needed by the metrics run so far."""
        return name in self.__dict__


# ----------------------------------------------------------------------------- metrics


def _fid(ctx: EvalContext) -> dict:
    layer = ctx.layer("fid")
    return fid.fid(ctx.sample_features[layer], ctx.reference_features[layer])


def _kid(ctx: EvalContext) -> dict:
    layer = ctx.layer("kid")
    return kid.kid(ctx.sample_features[layer], ctx.reference_features[layer], seed=ctx.settings.seed)


def _is(ctx: EvalContext) -> dict:
    return inception_score.inception_score(ctx.sample_features[ctx.layer("is")], seed=ctx.settings.seed)


def _pr(ctx: EvalContext) -> dict:
    # Equal set sizes, as in Kynkäänniemi et al.: the k-NN radii depend on the density of points.
    layer = ctx.layer("pr")
    real = ctx.reference_features[layer]
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(ctx.settings.seed))[: len(ctx.samples)]
    ctx.notes.append(f"pr: {len(pick)} reference images drawn at random (seed {ctx.settings.seed}) to match the sample count")
    return precision_recall.precision_recall(ctx.sample_features[layer], real[pick])


def _parzen(ctx: EvalContext) -> dict:
    train = ctx.train.x
    # The 2014 protocol: sigma chosen on 1,000 images of the last 10,000 training images.
    start = max(0, len(train) - 10_000)
    valid = train[start : start + parzen.PROTOCOL_VALID_SIZE]
    ctx.notes.append(
        f"parzen: {len(ctx.samples)} samples in [0, 1] pixel space; sigma from 10 values log-spaced in [0.1, 1] "
        f"chosen on training images {start}..{start + len(valid) - 1}; scored on all {len(ctx.test)} test images"
    )
    return parzen.parzen_window(
        parzen.to_parzen_space(ctx.samples), parzen.to_parzen_space(valid), parzen.to_parzen_space(ctx.test.x)
    )


def _nll(ctx: EvalContext) -> dict:
    from genlab.metrics.likelihood import evaluate_likelihood
    from genlab.models.vae import VAE

    if not isinstance(ctx.model, VAE):
        raise ConfigError("metric 'nll' needs a VAE run (a GAN has no encoder to estimate likelihoods with); use parzen")
    images = to_model(ctx.test.x[: ctx.settings.n]).to(ctx.settings.device)
    return evaluate_likelihood(ctx.model, images, ctx.settings.iw_k, seed=ctx.settings.seed)


def _nn(ctx: EvalContext) -> dict:
    n = min(NN_SAMPLES, len(ctx.samples), len(ctx.test))
    samples, test, train = ctx.samples[:n], ctx.test.x[:n], ctx.train.x
    flat = nearest_neighbours.flatten_pixels
    d_sample, idx = nearest_neighbours.nearest(flat(samples), flat(train))
    d_test, _ = nearest_neighbours.nearest(flat(test), flat(train), k=1)
    result = nearest_neighbours.distance_report(d_sample[:, 0], d_test[:, 0], prefix="nn_pixel_")
    nearest_neighbours.save_neighbours_png(samples[:NN_PNG_ROWS], train, idx[:NN_PNG_ROWS], ctx.out_dir / "nn_pixel.png")

    layer = ctx.layer("fid")
    train_feats = ctx.real_features(ctx.train, "train")[layer]
    test_feats = ctx.real_features(ctx.test, "test")[layer][:n]
    f_sample, f_idx = nearest_neighbours.nearest(ctx.sample_features[layer][:n], train_feats)
    f_test, _ = nearest_neighbours.nearest(test_feats, train_feats, k=1)
    result |= nearest_neighbours.distance_report(f_sample[:, 0], f_test[:, 0], prefix="nn_feature_")
    nearest_neighbours.save_neighbours_png(samples[:NN_PNG_ROWS], train, f_idx[:NN_PNG_ROWS], ctx.out_dir / "nn_features.png")
    ctx.notes.append(
        f"nn: {n} samples and {n} test images against all {len(train)} training images, in pixel space and "
        f"the {ctx.extractor.name} '{layer}' feature space; PNGs nn_pixel.png and nn_features.png (sample | 3 nearest)"
    )
    return result


def _modes(ctx: EvalContext) -> dict:
    x = ctx.samples
    if ctx.config.data.name == "stacked_mnist":  # one digit per channel, 1000 modes
        per_channel = [_predict(ctx, x[:, c : c + 1]) for c in range(x.shape[1])]
        mode, num_modes = stacked.stacked_modes(torch.stack(per_channel, 1)), stacked.NUM_MODES
    else:  # digits, grey or replicated to RGB (the classifier averages the channels)
        mode, num_modes = _predict(ctx, x), ctx.classifier.module.classifier.num_classes
    histogram = coverage.mode_histogram(mode, num_modes)
    return {**coverage.mode_coverage(histogram), "mode_histogram": histogram.tolist()}


def _predict(ctx: EvalContext, images: Tensor) -> Tensor:
    """The classifier's digit ``[N]`` for uint8 ``images``; reuses the sample features when they are its own."""
    if images is ctx.samples and ctx.settings.features == "mnist":
        return ctx.sample_features["logits"].argmax(1)
    return feat.extract_features(ctx.classifier, images, ctx.settings.batch_size, ctx.settings.device)["logits"].argmax(1)


METRIC_FUNCTIONS: dict[str, Callable[[EvalContext], dict]] = {
    "fid": _fid, "kid": _kid, "is": _is, "pr": _pr, "parzen": _parzen, "nll": _nll, "nn": _nn, "modes": _modes,
}  # fmt: skip


def evaluate(model: nn.Module, config: Config, settings: EvalSettings, out_dir: Path, run: str = "") -> tuple[dict, dict]:
    """Run ``settings.metrics`` on ``model`` (trained with ``config``; ``run`` names it in the card).

    Writes PNGs and the eval card (card.json, card.md) into ``out_dir``.
    Returns (flat results under constant keys, the card).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(model, config, settings, out_dir)
    results: dict = {}
    for name in settings.metrics:
        results |= METRIC_FUNCTIONS[name](ctx)
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
    )
    card_mod.write_card(card, out_dir)
    return results, card
