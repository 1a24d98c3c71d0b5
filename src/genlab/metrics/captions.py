"""How well a text-to-image model follows its captions: an attribute classifier trained on real
captioned sprites (``configs/attribute_classifier.yaml``) reads each generated image, and each
attribute the caption names (shape, size, colour, position, rotation) is right or wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from genlab.data.captions import ATTRIBUTES, captions, random_attributes, tokenize
from genlab.errors import ConfigError
from genlab.models.classifier import DigitClassifier
from genlab.models.protocols import LatentSampler, TextConditional, eval_mode


@torch.no_grad()
def attribute_probabilities(classifier: DigitClassifier, images: Tensor, batch_size: int = 500) -> list[Tensor]:
    """Images [N, C, H, W] in [-1, 1] -> for each of ATTRIBUTES, the classifier's probabilities of its
    values [N, values]: how sure it is, e.g. of a sample's shape."""
    if tuple(classifier.targets) != tuple(ATTRIBUTES):
        raise ConfigError(
            f"the attribute classifier must predict {list(ATTRIBUTES)}, this one predicts "
            f"{list(classifier.targets)}; train it with configs/attribute_classifier.yaml"
        )
    with eval_mode(classifier):
        chunks = [
            classifier(images[i : i + batch_size]).split(list(classifier.head_sizes), dim=1)
            for i in range(0, len(images), batch_size)
        ]
    return [torch.cat([chunk[k] for chunk in chunks]).softmax(1) for k in range(len(ATTRIBUTES))]


def predicted_attributes(classifier: DigitClassifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] -> the classifier's attribute indices [N, len(ATTRIBUTES)]."""
    return torch.stack([p.argmax(1) for p in attribute_probabilities(classifier, images, batch_size)], dim=1)


@torch.no_grad()
def classifier_features(classifier: DigitClassifier, images: Tensor, batch_size: int = 500) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] -> the classifier's penultimate features, float64 [N, feature_dim]:
    the in-domain feature space for FID on sprites (Inception's does not know them)."""
    with eval_mode(classifier):
        return torch.cat([classifier.features(chunk) for chunk in images.split(batch_size)]).double()


def attribute_accuracy(predicted: Tensor, expected: Tensor) -> dict[str, float]:
    """Per-attribute accuracy of predicted against expected indices, both [N, len(ATTRIBUTES)], and
    ``all``: the fraction of images right in every attribute."""
    correct = predicted == expected
    return {
        **{name: float(correct[:, k].float().mean()) for k, name in enumerate(ATTRIBUTES)},
        "all": float(correct.all(dim=1).float().mean()),
    }


@torch.no_grad()
def caption_accuracy(
    model: nn.Module, classifier: DigitClassifier, n: int, seed: int = 0, shapes: int = 3
) -> tuple[dict[str, float], Tensor]:
    """Sample ``n`` images of random captions (uniform attributes, seeded) and score them;
    returns the accuracies and the images (for FID)."""
    if not isinstance(model, TextConditional) or not isinstance(model, LatentSampler):
        raise ConfigError(
            f"a {type(model).__name__} is not conditioned on text; caption accuracy needs a text-to-image model"
        )
    generator = torch.Generator().manual_seed(seed)
    attributes = random_attributes(n, generator, shapes)
    tokens = model.tokens(captions(attributes, seed))
    with eval_mode(model):
        images = torch.cat([model.sample(len(t), generator=generator, labels=t) for t in tokens.split(500)])
    return attribute_accuracy(predicted_attributes(classifier, images), attributes), images


def attribute_shares(embeddings: Tensor, attributes: Tensor) -> dict[str, float]:
    """Per attribute, the share of the variance of ``embeddings`` [N, D] that its value explains: the variance
    of the per-value means over the total, summed over dimensions (one-way ANOVA's R²), with ``attributes``
    [N, len(ATTRIBUTES)] value indices. Near 0 when the attribute barely moves the embedding, however well a
    linear probe could still decode it: what a generator reading the embedding is shown of each attribute."""
    centred = embeddings.double() - embeddings.double().mean(dim=0)
    total = centred.square().sum(dim=1).mean()
    if total == 0:  # one embedding for every caption: no attribute moves it
        return dict.fromkeys(ATTRIBUTES, 0.0)
    shares = {}
    for k, name in enumerate(ATTRIBUTES):
        values = attributes[:, k]
        counts = torch.bincount(values).double().clamp_min(1)
        means = torch.zeros(len(counts), centred.shape[1], dtype=centred.dtype).index_add_(0, values, centred)
        shares[name] = float((means / counts[:, None])[values].square().sum(dim=1).mean() / total)
    return shares


@torch.no_grad()
def caption_embedding_shares(
    embed: Callable[[Tensor], Tensor], n: int = 8000, seed: int = 0, shapes: int = 3
) -> dict[str, float]:
    """:func:`attribute_shares` of ``embed`` (word indices [N, L] on the CPU -> sentence embeddings, e.g. a
    ``TextConditional``'s ``embed_text``) over ``n`` captions of uniformly drawn attributes in every template
    (one of the four names no rotation, which caps rotation's share)."""
    attributes = random_attributes(n, torch.Generator().manual_seed(seed), shapes)
    tokens = tokenize(captions(attributes, seed))
    return attribute_shares(torch.cat([embed(chunk).cpu() for chunk in tokens.split(1000)]), attributes)
