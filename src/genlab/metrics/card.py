"""Eval cards: what a number was computed from, so that it can be reproduced and compared.

A card (``card.json`` and ``card.md`` next to the eval's PNGs) records the metrics, the
feature extractor with a SHA-256 of its weights file, how images were resized, sample
and reference counts, the reference split, the seed, library versions, and warnings
(small-sample FID bias, Inception on small grey images, the Parzen estimator's variance).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from genlab.metrics.features import Extractor
from genlab.metrics.fid import fid_small_sample_warning
from genlab.metrics.registry import get_metric
from genlab.metrics.settings import EvalSettings
from genlab.runs.checkpoint import kimg_of

CARD_VERSION = 1
_LIBRARIES = ("genlab", "torch", "torchvision", "torch-fidelity", "numpy", "scipy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # genlab run from a source tree without installing
            versions[name] = "not installed"
    return versions


def describe_extractor(extractor: Extractor, image_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "name": extractor.name,
        "weights": str(extractor.weights),
        "weights_sha256": extractor.weights_sha256,
        "layers": extractor.layers,
        "resize": extractor.resize_mode(image_shape),
        **extractor.provenance,
    }


def card_warnings(
    settings: EvalSettings,
    results: dict,
    image_shape: tuple[int, ...] | None,
    n_reference: int | None,
    feature_dim: int | None,
) -> list[str]:
    warnings = []
    if "fid" in results and n_reference is not None and feature_dim is not None:
        warning = fid_small_sample_warning(settings.n, n_reference, feature_dim)
        if warning:
            warnings.append(warning)
    if (
        settings.features == "inception"
        and image_shape is not None
        and image_shape[-1] < 64
        and any("features" in get_metric(m).needs for m in settings.metrics)
    ):
        warnings.append(
            f"Inception-v3 features of {image_shape[-2]}x{image_shape[-1]} images upsampled to 299x299 fit "
            "digit-like data poorly; for MNIST prefer --features mnist, and never compare across feature spaces"
        )
    if settings.features == "mnist" and any(m in results for m in ("fid", "kid_mean", "precision")):
        warnings.append(
            "FID/KID/precision-recall here live in the genlab-mnist classifier's feature space: their scale is "
            "set by that network, so compare them only with values computed with the same weights (sha256 above), "
            "never with Inception FIDs from papers"
        )
    if "parzen" in settings.metrics:
        from genlab.metrics.parzen import CAVEAT

        warnings.append(CAVEAT)
    return warnings


def build_card(
    *,
    run: str,
    dataset: str,
    settings: EvalSettings,
    results: dict,
    image_shape: tuple[int, ...] | None,
    extractor: Extractor | None,
    feature_dim: int | None,
    n_reference: int | None,
    notes: list[str],
    command: str = "",
    checkpoint: Path | None = None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict. ``None`` marks what the chosen metrics did not use; ``command`` is what
    made it (``genlab eval ...``), empty when it was made from Python; ``checkpoint`` the weights it scored
    (named with its kimg, so that a card of a run still training says when it was made)."""
    extractor_info = describe_extractor(extractor, image_shape) if extractor and image_shape else None
    return {
        "card_version": CARD_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": run,
        "checkpoint": checkpoint.name if checkpoint else None,
        "kimg": kimg_of(checkpoint) if checkpoint else None,
        "command": command,
        "dataset": dataset,
        "settings": asdict(settings),
        "results": results,
        "feature_extractor": extractor_info,
        "image_shape": list(image_shape) if image_shape else None,
        "n_generated": settings.n if image_shape else None,
        "n_reference": n_reference,
        "reference_split": settings.reference_split if n_reference is not None else None,
        "seed": settings.seed,
        "versions": library_versions(),
        "warnings": card_warnings(settings, results, image_shape, n_reference, feature_dim),
        "notes": notes,
    }


def card_markdown(card: dict[str, Any]) -> str:
    lines = [
        f"# Eval card: {card['run'] or card['dataset']}",
        "",
        f"Created {card['created']}, dataset `{card['dataset']}`"
        + (f", by `{card['command']}`." if card.get("command") else "."),
        "",
    ]
    if card.get("checkpoint"):
        lines += [f"Weights: `{card['checkpoint']}`, after {card['kimg']:g} kimg of training.", ""]
    lines += ["## Results", "", "| metric | value |", "|---|---|"]
    for key, value in card["results"].items():
        shown = f"{value:.6g}" if isinstance(value, float) else json.dumps(value)
        lines.append(f"| {key} | {shown} |")
    lines += ["", "## Protocol", ""]
    fe = card["feature_extractor"]
    if fe:
        lines.append(
            f"- Feature extractor: `{fe['name']}`, layers {fe['layers']}, weights `{fe['weights']}` "
            f"(sha256 `{fe['weights_sha256']}`)"
        )
        if fe.get("classifier_test_accuracy") is not None:
            lines.append(f"- Classifier test accuracy: {fe['classifier_test_accuracy']:.4f}")
        lines.append(f"- Resize: {fe['resize']}")
    lines.append(f"- Generated samples: {card['n_generated']}, image shape {card['image_shape']}, seed {card['seed']}")
    if card["n_reference"] is not None:
        lines.append(f"- Reference: {card['n_reference']} real images, {card['reference_split']} split")
    lines += [f"- {note}" for note in card["notes"]]
    lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()))
    if card["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in card["warnings"]]
    return "\n".join(lines) + "\n"


def write_card(card: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``card.json`` and ``card.md`` into ``directory``; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "card.json", directory / "card.md"
    json_path.write_text(json.dumps(card, indent=2) + "\n")
    md_path.write_text(card_markdown(card))
    return json_path, md_path
