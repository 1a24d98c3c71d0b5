"""Style mixing, measured (Karras et al. 2019, section 3.1): which parent each attribute of a mixed
image comes from, as a judge reads parents and mix. Coarse styles should carry pose and shape, fine
ones colour and texture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def inheritance(a: Tensor, b: Tensor, mixed: Tensor, names: Sequence[str]) -> dict[str, tuple[float, float, int]]:
    """``a``, ``b`` and ``mixed`` are attribute values [N, len(names)] of parent A, parent B and their mix
    (same row, same pair). Per attribute, among the pairs whose parents differ in it: (fraction of mixes
    read with A's value, fraction with B's, number of such pairs); NaN fractions when no pair differs.
    An independent sample in the mix's place gives the chance level of both fractions."""
    result = {}
    for k, name in enumerate(names):
        differ = a[:, k] != b[:, k]
        n = int(differ.sum())
        from_a = float((mixed[differ, k] == a[differ, k]).float().mean()) if n else float("nan")
        from_b = float((mixed[differ, k] == b[differ, k]).float().mean()) if n else float("nan")
        result[name] = (from_a, from_b, n)
    return result


def resolution_shares(parts: dict[int, Tensor]) -> dict[int, float]:
    """``parts``: resolution -> what that resolution adds to each image [N, C, S, S] (they sum to the
    images). Each resolution's share of the images' spread: its pixels' standard deviation per image,
    averaged over images, as a fraction of the sum over resolutions (Karras et al. 2020, Figure 8).
    Where the low resolutions hold most of it, the fine styles have little of the image left to change."""
    spread = {r: float(torch.std(part.flatten(1).float(), dim=1).mean()) for r, part in parts.items()}
    total = sum(spread.values())
    return {r: s / total for r, s in spread.items()}
