"""Run folders that describe themselves: ``runs/00003-mnist-dcgan/``.

Each holds ``config.yaml`` (the resolved config), ``data.json`` (the data's name and
spec, so a model can be rebuilt without loading the data), ``log.txt``,
``stats.jsonl``, ``samples/``, ``checkpoints/`` and ``tensorboard/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from genlab.config import Config, config_from_dict, dump_config
from genlab.data.base import Spec, TensorDataset, spec_from_json, spec_to_json
from genlab.errors import RunError
from genlab.runs.locations import resolve

CONFIG_FILE = "config.yaml"
DATA_FILE = "data.json"
RUN_NUMBER = re.compile(r"(\d{5})-")  # the numbered prefix of a run folder's name


def _numbered(out_dir: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in out_dir.iterdir() if (m := RUN_NUMBER.match(p.name))}


def create_run_dir(out_dir: str | Path, name: str) -> Path:
    """The next numbered folder under ``out_dir``: 00000-name, 00001-name, ..."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    run_dir = out_dir / f"{max(_numbered(out_dir), default=-1) + 1:05d}-{safe_name}"
    run_dir.mkdir()
    return run_dir


def newest_run_dir(out_dir: str | Path) -> Path | None:
    """The highest-numbered run folder :func:`create_run_dir` made under ``out_dir``; None if there is none."""
    out_dir = Path(out_dir)
    runs = _numbered(out_dir) if out_dir.is_dir() else {}
    return runs[max(runs)] if runs else None


def write_run_files(run_dir: Path, config: Config, data: TensorDataset) -> None:
    dump_config(config, run_dir / CONFIG_FILE)
    (run_dir / DATA_FILE).write_text(json.dumps({"name": data.name, "spec": spec_to_json(data.spec)}, indent=2))


def read_run(run_dir: str | Path) -> tuple[Path, Config, Spec]:
    """A run's folder (``zoo:NAME`` resolved), its config and the spec of its data (what its models are built
    from)."""
    run_dir = resolve(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / DATA_FILE).is_file():
        raise RunError(
            f"{run_dir} is not a genlab run folder (no {CONFIG_FILE} / {DATA_FILE}); pass a folder under runs/"
        )
    config = config_from_dict(yaml.safe_load((run_dir / CONFIG_FILE).read_text()), source=str(run_dir / CONFIG_FILE))
    raw = json.loads((run_dir / DATA_FILE).read_text())
    if "spec" not in raw:
        raise RunError(f"{run_dir / DATA_FILE} predates named data fields; retrain the run with this genlab version")
    return run_dir, config, spec_from_json(raw["spec"])


def read_records(path: Path) -> list[dict]:
    """The records of a JSON-lines file a run appends to (``stats.jsonl``, ``metrics.jsonl``), oldest first;
    a last line still being written (no newline yet) is left out, and a missing file has none."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def read_stats(run_dir: str | Path) -> list[dict]:
    """The rows of a run's ``stats.jsonl``, oldest first: one per logging window (kimg, losses,
    images_per_sec, ...)."""
    return read_records(resolve(run_dir) / "stats.jsonl")


def loop_seconds(run_dir: str | Path, kimg: float = float("inf")) -> float:
    """The loop's seconds to reach ``kimg`` (default: its end), from stats.jsonl, whose windows tile
    the loop's time: each window's images over its images per second."""
    seconds, done = 0.0, 0.0
    for r in read_stats(run_dir):
        step = min(r["kimg"], kimg) - done
        if step <= 0:
            break
        seconds += 1000 * step / r["images_per_sec"]
        done += step
    return seconds
