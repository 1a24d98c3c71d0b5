"""The runs a studio serves: what each one is, its model loaded once, and its live training log.

A :class:`ServedRun` knows its run folder from the command line only; requests address it by
index. Its model is loaded on first use from the newest good checkpoint and loaded again when
training has written a newer one, so a run in progress can be watched as it learns. A lock per
run keeps a load and the requests that use the model from interleaving.
"""

from __future__ import annotations

import json
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from genlab.api import load
from genlab.config import config_to_dict
from genlab.data import load_dataset
from genlab.data.base import Classes, LabelMap, TensorDataset, Tokens, describe
from genlab.data.pairs import PALETTE, palette_image
from genlab.errors import ConfigError, RunError
from genlab.images import to_model
from genlab.latent.sample import sample_shape
from genlab.metrics.evaluate import card_folder, evaluate
from genlab.metrics.settings import EvalSettings, default_features, default_metrics
from genlab.models import build_model
from genlab.models.protocols import (
    REVERSE_ROLE,
    Conditional,
    Encoder,
    IterativeSampler,
    LatentSampler,
    LayoutSynthesiser,
    StyleBased,
    TextConditional,
    Translator,
    is_conditional,
)
from genlab.runs.checkpoint import checkpoint_to_read, list_checkpoints
from genlab.runs.folder import read_records, read_run
from genlab.runs.locations import output_dir, reference

MAX_STATS_ROWS = 2000  # rows of stats.jsonl one monitor request returns


@dataclass
class EvalJob:
    """An evaluation the page asked for, computed in a thread: where it stands, for the page's progress bar."""

    metrics: tuple[str, ...]
    n: int
    state: Literal["running", "done", "failed"] = "running"
    done: int = 0  # metrics finished
    metric: str = ""  # the one being computed
    error: str = ""

    def report(self, done: int, total: int, metric: str) -> None:
        self.done, self.metric = done, metric

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": len(self.metrics)}


class ServedRun:
    def __init__(self, index: int, run_dir: str | Path) -> None:
        self.index = index
        self.run_dir, self.config, self.spec = read_run(run_dir)
        self._lock = threading.Lock()
        self._models: dict[str | None, nn.Module] = {}  # by role; None: the export
        self._checkpoint: Path | None = None
        self._test_data: TensorDataset | None = None  # loaded on the first example asked for
        self.eval_job: EvalJob | None = None
        self._eval_thread: threading.Thread | None = None

    @property
    def reversible(self) -> bool:
        """Whether the run translates B to A too, by a module of REVERSE_ROLE (a CycleGAN's G_BA)."""
        return REVERSE_ROLE in build_model(self.config.model, self.spec)

    @contextmanager
    def model(self, role: str | None = None) -> Iterator[nn.Module]:
        """The run's exported model (or its module of ``role``), held under the run's lock for the request."""
        with self._lock:
            checkpoints = list_checkpoints(self.run_dir / "checkpoints")
            if not checkpoints:
                raise RunError(
                    f"run {self.index} ({self.run_dir.name}) has no checkpoint yet; "
                    "its model appears once training has written one"
                )
            if checkpoints[-1] != self._checkpoint:  # a new checkpoint: every role loads again
                self._models, self._checkpoint = {}, checkpoints[-1]
            if role not in self._models:
                self._models[role] = load(self.run_dir, role=role)
            with torch.no_grad():
                yield self._models[role]

    def start_eval(self, metrics: list[str] | None, n: int) -> EvalJob:
        """Start ``genlab eval`` of this run in a thread (the default metrics when ``metrics`` is None), writing
        its card where the command would; ConfigError for bad settings. The app starts one at a time."""
        checkpoint = checkpoint_to_read(self.run_dir)
        model = load(self.run_dir, checkpoint=checkpoint)  # its own copy: the served one stays free for the page
        chosen = tuple(metrics) if metrics else default_metrics(model)
        settings = EvalSettings(metrics=chosen, n=n, features=default_features(self.config.data.name))
        job = self.eval_job = EvalJob(chosen, n)
        self._eval_thread = threading.Thread(
            target=self._evaluate, args=(job, model, settings, checkpoint), daemon=True
        )
        self._eval_thread.start()
        return job

    def wait_eval(self, timeout: float | None = None) -> None:
        """Wait for a running evaluation to end (a server stopping, a test cleaning up)."""
        if self._eval_thread is not None:
            self._eval_thread.join(timeout)

    def _evaluate(self, job: EvalJob, model: nn.Module, settings: EvalSettings, checkpoint: Path) -> None:
        ref = reference(self.run_dir)
        command = f"genlab eval {ref} --metrics {','.join(settings.metrics)} --n {settings.n}"
        out = output_dir(self.run_dir) / "eval" / card_folder(settings, model)
        try:
            evaluate(
                model, self.config, settings, out, run=ref, command=command, progress=job.report, checkpoint=checkpoint
            )
            job.state, job.done, job.metric = "done", len(job.metrics), ""
        except Exception as err:  # a thread has no caller to raise to: the page shows the reason
            job.state, job.error = "failed", f"{type(err).__name__}: {err}"

    def example(self, index: int) -> dict[str, Tensor]:
        """Test example ``index`` (modulo the split's size) of an image-to-image run: its source and
        target images ``[1, C, H, W]`` in [-1, 1], to start a drawing from a real source. For data with a
        label map and an image (SPADE's), the label map drawn in the label palette is the source."""
        with self.model() as model:
            labels = self._label_map_key(model)
        if not {"source", "target"} <= set(self.spec) and labels is None:
            raise ConfigError(
                f"run {self.index} ({self.run_dir.name}) has no paired source and target images; "
                "examples are for pix2pix-style runs"
            )
        with self._lock:
            if self._test_data is None:
                self._test_data = load_dataset(self.config.data, "test")
            batch = self._test_data.batch(torch.tensor([index % len(self._test_data)]), torch.device("cpu"))
        if labels is None or {"source", "target"} <= set(self.spec):
            return {"source": batch["source"], "target": batch["target"]}
        return {"source": to_model(palette_image(batch[labels])), "target": batch["image"]}

    def _label_map_key(self, model: nn.Module) -> str | None:
        """For a label-map-and-style model (SPADE), the data's label map field (the examples' source), else None."""
        found = [k for k, f in self.spec.items() if isinstance(f, LabelMap)]
        return found[0] if isinstance(model, LayoutSynthesiser) and len(found) == 1 else None

    def summary(self) -> dict[str, Any]:
        """JSON-ready: names, data, training settings, capabilities and the latest eval card."""
        cfg = self.config
        summary = {
            "index": self.index,
            "name": self.run_dir.name,
            "reference": reference(self.run_dir),  # how commands name it: its path, or zoo:NAME
            "model": cfg.model.name,
            "objective": cfg.objective.name,
            "data": cfg.data.name,
            "fields": describe(self.spec),
            "kimg_target": cfg.train.kimg,
            "kimg": self._kimg(),
            "batch_size": cfg.train.batch_size,
            "config": config_to_dict(cfg),
            "card": self._card(),
        }
        try:
            with self.model() as model:
                summary["capabilities"] = self._capabilities(model)
        except RunError as err:  # a run that has just started: the monitor works, the rest waits
            summary["capabilities"] = {"waiting": str(err)}
        return summary

    def stats(self, since: int = 0) -> dict[str, Any]:
        """Rows ``since`` .. of stats.jsonl (at most MAX_STATS_ROWS) and the warnings in log.txt."""
        every = read_records(self.run_dir / "stats.jsonl")
        rows, total = every[since : since + MAX_STATS_ROWS], len(every)
        log = self.run_dir / "log.txt"
        warnings = [line.strip() for line in log.read_text().splitlines() if "WARNING" in line] if log.is_file() else []
        return {
            "since": since,
            "next": since + len(rows),
            "total": total,
            "rows": rows,
            "warnings": warnings[-50:],
            "kimg_target": self.config.train.kimg,
        }

    # ------------------------------------------------------------------ internals

    def _capabilities(self, model: nn.Module) -> dict[str, Any]:
        caps: dict[str, Any] = {
            "sampler": isinstance(model, LatentSampler),
            "encoder": isinstance(model, Encoder),
            "translator": isinstance(model, Translator),
            "classes": None,
        }
        if isinstance(model, LatentSampler):  # caps["sampler"]
            caps["latent_dim"] = int(model.latent_dim)
            caps["image_shape"] = list(sample_shape(model))
            # a toy GAN's points are not pictures: the game is for those
            caps["sampler"] = len(caps["image_shape"]) == 3
        caps["text"] = isinstance(model, TextConditional)
        if isinstance(model, TextConditional):  # a caption grammar: its slots' words as choices
            caps["caption_form"] = self._caption_form(model.condition_key)
        if isinstance(model, IterativeSampler):  # diffusion: its sampling settings, changeable per request
            caps["iterative"] = {"steps": model.steps, "sampler": model.sampler, "guidance": model.guidance}
        caps["style_based"] = isinstance(model, StyleBased)
        if isinstance(model, StyleBased):  # caps["style_based"]
            caps["num_ws"] = int(model.num_ws)
        if is_conditional(model):
            assert isinstance(model, Conditional)  # is_conditional checked it
            names = next((f.names for f in self.spec.values() if isinstance(f, Classes)), None)
            caps["classes"] = list(names or map(str, range(model.num_classes)))
        if isinstance(model, Translator):  # caps["translator"]
            caps["source_shape"], caps["target_shape"] = list(model.source_shape), list(model.target_shape)
            caps["canvas"] = self._canvas(model)
            caps["examples"] = {"source", "target"} <= set(self.spec) or self._label_map_key(model) is not None
            caps["reverse"] = self.reversible
        caps["style_image"] = isinstance(model, LayoutSynthesiser)
        caps["default_metrics"] = list(default_metrics(model))  # what the page's "compute the card" proposes
        return caps

    def _caption_form(self, key: str) -> dict[str, Any] | None:
        """The template of the captions' grammar and each slot's words (from the data's Classes fields), or None."""
        field = self.spec.get(key)
        if not isinstance(field, Tokens) or not field.template:
            return None
        slots = [name for _, name, _, _ in string.Formatter().parse(field.template) if name]
        choices = {name: list(f.names) for name in slots if isinstance(f := self.spec.get(name), Classes)}
        return {"template": field.template, "choices": choices} if len(choices) == len(slots) else None

    def _canvas(self, model: nn.Module) -> dict[str, Any]:
        """How the page's drawing canvas should draw the model's sources."""
        data = self.config.data
        kind, direction = getattr(data, "kind", None), getattr(data, "direction", "AtoB")
        if kind == "edges" and direction == "AtoB":
            return {"mode": "edges", "background": [255, 255, 255], "pens": [{"name": "edge", "color": [0, 0, 0]}]}
        if (kind == "labels" and direction == "AtoB") or isinstance(model, LayoutSynthesiser):
            names = next((f.names for f in self.spec.values() if isinstance(f, LabelMap)), ())
            pens = [{"name": name, "color": PALETTE[k].tolist()} for k, name in enumerate(names)]
            return {"mode": "labels", "background": PALETTE[0].tolist(), "pens": pens}
        return {
            "mode": "paint",
            "background": [255, 255, 255],
            "pens": [
                {"name": name, "color": color}
                for name, color in (
                    ("black", [0, 0, 0]),
                    ("grey", [128, 128, 128]),
                    ("red", [220, 40, 40]),
                    ("green", [40, 170, 60]),
                    ("blue", [40, 80, 220]),
                    ("white", [255, 255, 255]),
                )
            ],
        }

    def _kimg(self) -> float | None:
        checkpoints = list_checkpoints(self.run_dir / "checkpoints")
        return int(checkpoints[-1].name.split("-")[-1]) / 1000 if checkpoints else None

    def _card(self) -> dict[str, Any] | None:
        """The newest eval card: the run's own, or for a zoo entry also one computed into the cache."""
        folders = {self.run_dir, output_dir(self.run_dir)}
        cards = sorted((p for f in folders for p in (f / "eval").glob("*/card.json")), key=lambda p: p.stat().st_mtime)
        if not cards:
            return None
        card = json.loads(cards[-1].read_text())
        return {
            "folder": cards[-1].parent.name,
            "command": card.get("command", ""),
            "results": card.get("results"),
            "warnings": card.get("warnings", []),
        }
