"""The model zoo: trained models shipped with genlab, one run folder per entry in ``src/genlab/zoo/``.

An entry is what a user needs to look at, sample, evaluate and compare a model, and no more:

- ``config.yaml`` and ``data.json``: the run's config (which retrains it; its data roots unset, so that
  the data is read from the user's ``$GENLAB_DATA`` or cache) and data spec;
- ``entry.yaml``: its family, the command that trained it, where it ran, how long, and what it
  would gain from longer training;
- ``stats.jsonl`` (thinned to at most :data:`MAX_STATS_ROWS` rows) and ``metrics.jsonl``: its training
  curves and recorded figures;
- ``eval/*/card.json``: its eval cards, computed on the shipped weights;
- ``checkpoints/ckpt-N/``: the exported model in fp16 safetensors (no D, no optimiser), and other roles
  a tool may ask for (CycleGAN's ``G_BA``) in ``modules.safetensors``; SHA-256 checked on every read,
  like any checkpoint.

:func:`pack` writes one from a run folder (``genlab zoo pack``); :func:`entries` reads them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import Tensor

from genlab.errors import ConfigError, RunError
from genlab.runs import checkpoint as ckpt
from genlab.runs.folder import loop_seconds, read_records
from genlab.runs.locations import ZOO_DIR, ZOO_PREFIX, zoo_names

ENTRY_FILE = "entry.yaml"
MAX_STATS_ROWS = 400  # of stats.jsonl: enough for any curve, and a few tens of kB
HEADLINE = (
    "fid",
    "conditional_accuracy",
    "precision",
    "recall",
    "bits_per_dim",
    "nll_nats",
    "ade_best",
    "fde_best",
    "accuracy",
)


@dataclass(frozen=True)
class ZooEntry:
    """One entry as ``genlab zoo list`` shows it."""

    name: str
    path: Path
    info: dict[str, Any]  # entry.yaml: family, data, kimg, command, hardware, train_seconds, description, longer

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def headline(self) -> dict[str, float]:
        """The scalar figures of its newest eval card that :data:`HEADLINE` names, in that order (a classifier:
        the test accuracy its training recorded in metrics.jsonl)."""
        cards = sorted(self.path.glob("eval/*/card.json"))
        records = read_records(self.path / "metrics.jsonl")
        if cards:
            results = json.loads(cards[-1].read_text())["results"]
        elif records:
            results = records[-1]
        else:
            return {}
        return {key: float(results[key]) for key in HEADLINE if isinstance(results.get(key), (int, float))}


def entries(zoo_dir: Path = ZOO_DIR) -> list[ZooEntry]:
    """Every entry of the zoo, by name."""
    return [
        ZooEntry(name, zoo_dir / name, yaml.safe_load((zoo_dir / name / ENTRY_FILE).read_text()) or {})
        for name in zoo_names(zoo_dir)
    ]


def generators(zoo_dir: Path = ZOO_DIR) -> list[ZooEntry]:
    """The entries that generate or translate (not the judges, whose family is ``classifier``): the studio's."""
    return [entry for entry in entries(zoo_dir) if entry.info.get("family") != "classifier"]


def pack(run_dir: Path, name: str, info: dict[str, Any], roles: tuple[str, ...] = (), zoo_dir: Path = ZOO_DIR) -> Path:
    """Write run ``run_dir``'s newest good checkpoint as zoo entry ``name`` (replacing one of that name).

    The export and each of ``roles`` (modules of the run besides the export) are stored in fp16; integer
    buffers stay as they are. Written under a temporary name and renamed, so a failed pack leaves the zoo
    as it was.
    """
    if not name.replace("-", "").isalnum():
        raise ConfigError(f"zoo entry names are letters, digits and dashes, got {name!r}")
    source = ckpt.latest_checkpoint(run_dir)
    export_info, weights = ckpt.read_export(source)
    extra = {f"{role}.{key}": value for role in roles for key, value in ckpt.read_module(source, role).items()}
    tmp, final = zoo_dir / f".tmp-{name}-{os.getpid()}", zoo_dir / name
    shutil.rmtree(tmp, ignore_errors=True)
    target = tmp / "checkpoints" / source.name
    target.mkdir(parents=True)
    try:
        if (run_dir / "data.json").is_file():
            shutil.copy(run_dir / "data.json", tmp / "data.json")
        _relocate_records(run_dir / "metrics.jsonl", tmp / "metrics.jsonl", name)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        config["data"] = _without_roots(config["data"])
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _thin_stats(run_dir / "stats.jsonl", tmp / "stats.jsonl")
        kimg = int(source.name.removeprefix(ckpt.PREFIX)) / 1000
        seconds = round(loop_seconds(run_dir, kimg))
        record = {"name": name, "kimg": kimg, "train_seconds": seconds, **info}
        (tmp / ENTRY_FILE).write_text(yaml.safe_dump(record, sort_keys=False))
        save_file(_half(weights), target / ckpt.EXPORT_WEIGHTS)
        (target / ckpt.EXPORT_INFO).write_text(yaml.safe_dump(export_info, sort_keys=False))
        files = [ckpt.EXPORT_WEIGHTS, ckpt.EXPORT_INFO]
        if extra:
            save_file(_half(extra), target / ckpt.MODULES_FILE)
            files.append(ckpt.MODULES_FILE)
        sums = {"algorithm": "sha256", "export_only": True, "files": {f: ckpt.file_sha256(target / f) for f in files}}
        (target / ckpt.CHECKSUMS_FILE).write_text(json.dumps(sums, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _without_roots(section: Any) -> Any:
    """A data section with every ``root`` (the trainer's data folder) unset: the user's $GENLAB_DATA or cache."""
    if isinstance(section, dict):
        return {k: None if k == "root" else _without_roots(v) for k, v in section.items()}
    return section


def _relocate_records(source: Path, target: Path, name: str) -> None:
    """Copy metrics.jsonl with each record's run as the entry (``zoo:NAME``) and without its card's path: both
    named folders of the trainer's machine (an absolute path in its home, for a classifier)."""
    if not source.is_file():
        return
    moved = [{**{k: v for k, v in r.items() if k != "card"}, "run": ZOO_PREFIX + name} for r in read_records(source)]
    target.write_text("".join(json.dumps(r) + "\n" for r in moved))


def _half(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Floating tensors in fp16 (half the bytes; the models load them back into fp32), others as they are."""
    for key, value in tensors.items():
        if value.is_floating_point() and value.abs().max() > torch.finfo(torch.float16).max:
            raise RunError(f"{key} holds values beyond fp16's range; it cannot be shipped in fp16")
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def _thin_stats(source: Path, target: Path) -> None:
    """Copy stats.jsonl keeping every k-th row (and the last), at most :data:`MAX_STATS_ROWS`."""
    if not source.is_file():
        return
    rows = source.read_text().splitlines(keepends=True)
    rows = [row for row in rows if row.endswith("\n")]
    step = max(1, -(-len(rows) // MAX_STATS_ROWS))
    kept = rows[::step] + ([rows[-1]] if rows and (len(rows) - 1) % step else [])
    target.write_text("".join(kept))
