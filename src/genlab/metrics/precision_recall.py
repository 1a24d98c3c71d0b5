"""Improved precision and recall (Kynkäänniemi et al. 2019), through torch-fidelity.

Precision: the fraction of generated samples inside the k-NN ball of some real sample
(quality). Recall: the fraction of real samples inside the k-NN ball of some generated
sample (coverage). k = 3 as in the paper.
"""

from __future__ import annotations

from torch import Tensor
from torch_fidelity.metric_prc import prc_features_to_metric

KEY_PRECISION = "precision"
KEY_RECALL = "recall"
KEY_F_SCORE = "f_score"


def precision_recall(
    generated: Tensor, real: Tensor, neighbourhood: int = 3, batch_size: int = 10_000
) -> dict[str, float]:
    """Precision/recall of ``generated: [N1, D]`` against ``real: [N2, D]``.

    ``batch_size`` bounds memory of the pairwise distances; it does not change the result.
    """
    value = prc_features_to_metric(
        generated.detach().cpu().float(),
        real.detach().cpu().float(),
        prc_neighborhood=neighbourhood,
        prc_batch_size=batch_size,
        save_cpu_ram=True,  # batched distances: never the full N1 x N2 matrix at once
        verbose=False,
    )
    return {
        KEY_PRECISION: value["precision"],
        KEY_RECALL: value["recall"],
        KEY_F_SCORE: value["f_score"],
    }
