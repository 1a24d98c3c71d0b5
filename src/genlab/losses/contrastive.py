"""Contrastive losses of a joint text-image embedding, as pure functions of the embeddings.

Reed et al. (2016) train their text encoder so that each caption scores its own image above the
batch's other images, and each image its own caption above the other captions (the symmetric
structured joint embedding). CLIP (Radford et al. 2021) writes the same ranking as a
cross-entropy over the batch in both directions (symmetric InfoNCE), which is what this is.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def identical_rows(tokens: Tensor) -> Tensor:
    """Captions [N, L] -> bool [N, N]: which pairs of examples have the same caption (the diagonal included)."""
    return (tokens[:, None, :] == tokens[None, :, :]).all(dim=2)


def symmetric_info_nce(text: Tensor, images: Tensor, logit_scale: Tensor, positives: Tensor) -> Tensor:
    """Cross-entropy of text->image and image->text retrieval within the batch, averaged.

    text, images: [N, E] unit vectors, row i of each from example i; logit_scale: the inverse
    temperature (a scalar); positives: bool [N, N], ``positives[i, j]`` when image j fits text i
    (at least the diagonal; :func:`identical_rows` of the captions).

    Captions are drawn from a finite set of attribute combinations, so a batch may hold one caption
    twice: its two images are right answers alike. The target of each row is therefore uniform over
    its positives (soft targets), instead of the diagonal alone, so that which example of a shared
    caption holds which image does not matter. (While identical captions get identical embeddings,
    as from a deterministic encoder, the diagonal gives the same value; soft targets stay right for
    any embeddings.) The minimum is the targets' entropy: 0 when every caption is distinct.
    """
    logits = logit_scale * text @ images.T  # [N texts, N images]
    targets = positives.float()
    text_to_image = F.cross_entropy(logits, targets / targets.sum(dim=1, keepdim=True))
    image_to_text = F.cross_entropy(logits.T, targets.T / targets.T.sum(dim=1, keepdim=True))
    return 0.5 * (text_to_image + image_to_text)
