"""The one training loop. Every model family plugs in through a ``Step`` (see step.py).

``train()`` resolves the config, the device and the run's writer lock; its ``Trainer`` owns
batches, phase repeats, which modules each phase trains (requires_grad and DDP),
learning-rate schedules, autocast, backward, gradient clipping, NaN checks, logging,
snapshots, checkpoints with the exported model, exact resume, signals and DDP wrapping:
its state in attributes, each stage a method, ``Trainer.run`` read top to bottom.
A NaN/Inf loss or gradient norm stops the run naming the iteration, the phase and which of
the two it was (``train.on_nan=rollback`` instead reloads the last good checkpoint with the
learning rates halved, at most ``train.max_rollbacks`` times).
Progress is counted in real images seen (all processes together), so the batch size
and the number of GPUs do not change the schedule.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from genlab import distributed
from genlab.config import Config, TrainConfig, config_to_dict
from genlab.data import load_dataset
from genlab.data.base import Batch, Spec, TensorDataset, spec_to_json
from genlab.errors import ConfigError, GenlabError, RunError, TrainingDiverged
from genlab.images import make_grid, save_grid
from genlab.models import build_modules
from genlab.models.protocols import DataInitialised, FittedToData, Staged
from genlab.registry import OBJECTIVES
from genlab.runs import checkpoint as ckpt
from genlab.runs import lock as run_lock
from genlab.runs.folder import create_run_dir, read_run, write_run_files
from genlab.training import cpu_linear
from genlab.training import precision as precision_probe
from genlab.training.batches import MEMORY_FORMATS, BatchStream
from genlab.training.progress import progress_strip
from genlab.training.schedules import lr_factor
from genlab.training.stats import Meter, RunLogger
from genlab.training.step import Phase, Step

VERSION = 2  # of the training-state layout
SNAPSHOT_SIZE = 64  # real examples kept fixed for reconstructions / conditioning
# Keys that may change when resuming without breaking exactness.
RESUMABLE_CHANGES = {"data.root"} | {
    f"train.{key}"
    for key in (
        "kimg",
        "log_every_kimg",
        "snapshot_every_kimg",
        "checkpoint_every_kimg",
        "keep_checkpoints",
        "progress_bar",
        "tensorboard",
        "on_nan",
        "max_rollbacks",
        "max_minutes",
    )
}


def build_step(config: Config, spec: Spec, device: torch.device, data: TensorDataset | None = None) -> Step:
    """Modules of ``config.model`` for data of ``spec`` on ``device``, in the objective's Step.

    With ``data`` (a new run), modules that initialise weights from the data do so.
    """
    modules = build_modules(config.model, spec)
    for module in modules.values():
        if data is not None and isinstance(module, DataInitialised):
            module.init_from_data(data)
    # channels_last (NHWC) lets oneDNN and cuDNN skip layout conversions around each convolution; it changes
    # no result beyond float rounding. Module.to converts only 4-D tensors, so MLPs are unaffected.
    layout = MEMORY_FORMATS[config.train.memory_format]
    # torch's stubs of Module.to lack memory_format, which it takes (and passes to Tensor.to)
    modules = {name: m.to(device, memory_format=layout) for name, m in modules.items()}  # type: ignore[call-overload]
    return OBJECTIVES.get(config.objective.name).builder(config.objective, modules, spec, config.train)


def train(config: Config | None = None, resume: str | Path | None = None, stop_after_kimg: float | None = None) -> Path:
    """Train ``config`` in a new run folder, or continue the run folder ``resume`` exactly.

    ``stop_after_kimg`` stops early (with a checkpoint) once that many thousand images
    have been seen, as Ctrl-C or SIGTERM do, and ``train.max_minutes`` once the loop has run
    that long (counted from its first iteration); ``--resume`` continues from there.
    A resume starts from the newest checkpoint that passes its checksums (saying so when
    that is not the newest). A new run's folder is made only once the data and the modules
    are built, and removed again if training fails before its first checkpoint.
    One process trains a run folder at a time: a second is refused before it writes anything.
    Returns the run folder.
    """
    if stop_after_kimg is not None and not stop_after_kimg > 0:
        raise ConfigError(f"stop_after_kimg must be > 0, got {stop_after_kimg}")
    if resume is not None:
        config = resume_config(Path(resume), config)
    elif config is None:
        raise ConfigError("train() needs a config or a run folder to resume")
    tc = config.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    device = distributed.resolve_device(tc.device)
    dist = distributed.init_from_env(device)
    if tc.sync_batchnorm and dist.world_size > 1 and device.type != "cuda":
        raise ConfigError(
            f"train.sync_batchnorm=true needs CUDA GPUs: torch {torch.__version__}'s SyncBatchNorm does not "
            f"run on {device.type} tensors, and these {dist.world_size} processes train on {device.type}. "
            "Run one process per GPU (train.device=auto), or set train.sync_batchnorm=false so that each "
            "process normalises with its own batch's statistics"
        )
    with _writer_lock(resume, dist):
        return Trainer(config, None if resume is None else Path(resume), stop_after_kimg, device, dist).run()


class Trainer:
    """One call of the loop over one run: its state in attributes, each stage a method.

    ``run`` reads top to bottom: open the run folder, choose the precision, then iterate
    (schedules, one iteration, rollback on divergence, log, snapshot, checkpoint) until the
    images, the clock or a signal say stop.
    """

    def __init__(
        self,
        config: Config,
        resume: Path | None,
        stop_after_kimg: float | None,
        device: torch.device,
        dist: distributed.DistInfo,
    ) -> None:
        tc = self.tc = config.train
        self.config, self.resume, self.device, self.dist = config, resume, device, dist
        torch.manual_seed(tc.seed * 1000 + dist.rank)  # model init is synced by DDP; data order is not the RNG's

        self.data = load_dataset(config.data, "train")
        latest, skipped = ckpt.good_checkpoint(resume) if resume is not None else (None, [])
        self.step = build_step(config, self.data.spec, device, data=None if resume is not None else self.data)
        saved = ckpt.load_training_state(latest) if latest else None
        # A resume keeps the run's backend (checkpoints from before the choice existed trained on the BLAS).
        requested = saved.get("cpu_linear", "blas") if saved else tc.cpu_linear
        self.linear_backend, self.linear_note = cpu_linear.setup(
            requested, device, self.step.modules.values(), distributed.broadcast_object
        )
        self.phases = self.step.phases()
        self.schedules = _schedules(config, self.step)
        self.stream = BatchStream(
            self.data, tc.batch_size, tc.seed, device, dist.rank, dist.world_size, MEMORY_FORMATS[tc.memory_format]
        )
        self.fixed = self.data.batch(slice(0, SNAPSHOT_SIZE), device)

        self.images_seen = self.iteration = self.rollbacks = 0
        self.precision = None if tc.precision == "auto" else tc.precision  # auto: measured once the run folder exists
        self.fallback = None
        if latest is not None:
            self.fallback = ckpt.fallback_note(latest, skipped)
            state = self.restore(latest, saved)
            self.images_seen, self.iteration, self.rollbacks = (
                state["images_seen"],
                state["iteration"],
                state.get("rollbacks", 0),
            )
            self.precision = self.precision or state.get("precision")

        self.total = int(tc.kimg * 1000)
        self.stop_at = self.total if stop_after_kimg is None else min(self.total, int(stop_after_kimg * 1000))
        self.params = {
            phase.name: [p for g in self.step.optimizers[phase.optimizer].param_groups for p in g["params"]]
            for phase in self.phases
        }
        for opt in self.step.optimizers.values():
            for group in opt.param_groups:
                # the base rate schedules scale; checkpointed with the optimiser
                group.setdefault("initial_lr", group["lr"])
        self.wrapped = _wrap_for_ddp(self.step, self.phases, device, tc.sync_batchnorm) if dist.world_size > 1 else {}
        self.meter = Meter()
        self.autocasts = {
            p: torch.autocast(device.type, dtype=torch.bfloat16, enabled=p == "bf16")
            for p in precision_probe.PRECISIONS
        }

    def run(self) -> Path:
        """Train until the images, the clock or a signal say stop; returns the run folder."""
        with _stop_signals() as stop_flag, _run_folder(self.resume, self.config, self.data, self.dist) as run_dir:
            self.run_dir = run_dir
            self.logger = RunLogger(run_dir, self.tc.tensorboard, enabled=self.dist.is_main)
            self.announce()
            self.choose_precision()
            timed_out = self.iterate(stop_flag)
        self.finish(timed_out)
        return self.run_dir

    def announce(self) -> None:
        world = f" x{self.dist.world_size}" if self.dist.world_size > 1 else ""
        self.logger.message(
            f"{'resuming' if self.resume else 'training'} {self.run_dir} at "
            f"{self.images_seen / 1000:.1f} kimg on {self.device}{world}"
        )
        if self.fallback:
            self.logger.warning(self.fallback, self.images_seen)
        if self.linear_note:
            self.logger.message(self.linear_note)

    def choose_precision(self) -> None:
        """train.precision=auto: time both on this run's own iterations; an explicit bf16 without bf16 kernels warns."""
        if self.precision is None:
            self.precision = self.probe_precision()
            self.meter = Meter()
        elif self.precision == "bf16" and not precision_probe.native_bf16(self.device):
            self.logger.warning(
                f"train.precision=bf16 on {self.device}, which has no native bf16 kernels: bf16 runs on "
                "slow fallbacks here (a DCGAN step 12-17x slower than fp32 on AVX2 CPUs); set "
                "train.precision=fp32 or auto",
                self.images_seen,
            )

    def iterate(self, stop_flag: _Flag) -> bool:
        """The loop proper. Returns whether ``train.max_minutes`` ended it."""
        tc, dist = self.tc, self.dist
        progress = _progress_bar(tc.progress_bar and dist.is_main, self.images_seen, self.total)
        window_start, window_images = time.perf_counter(), self.images_seen
        deadline, timed_out, stop_requested = window_start + 60 * tc.max_minutes, False, False
        while self.images_seen < self.stop_at and not stop_requested:
            before = self.images_seen
            self.follow_schedules()
            assert self.precision is not None  # choose_precision set it
            try:
                self.images_seen += self.run_iteration(self.precision, self.images_seen)
            except TrainingDiverged as diverged:
                self.roll_back(diverged)
                window_images, progress.n = self.images_seen, self.images_seen
                continue
            self.iteration += 1
            progress.update(self.images_seen - before)
            # Every rank must agree on a timed stop, or one would wait for the others at the next collective.
            timed_out = tc.max_minutes > 0 and distributed.any_rank(time.perf_counter() >= deadline)
            stop_requested = distributed.any_rank(stop_flag.is_set) or self.images_seen >= self.stop_at or timed_out

            if _crossed(before, self.images_seen, tc.log_every_kimg) or self.images_seen >= self.stop_at or timed_out:
                now = time.perf_counter()
                record = self.log(images_per_sec=(self.images_seen - window_images) / max(now - window_start, 1e-9))
                window_start, window_images = now, self.images_seen
                progress.set_postfix_str(_summary(record), refresh=False)
            # A stop (time budget, signal) shows where the run stopped, as the end of a run does; snapshots draw from
            # their own seeded generators, so an extra one leaves the resumed run exact.
            snapshot_due = dist.is_main and (
                _crossed(before, self.images_seen, tc.snapshot_every_kimg)
                or self.images_seen >= self.total
                or (stop_requested and tc.snapshot_every_kimg > 0)
            )
            checkpoint_due = _crossed(before, self.images_seen, tc.checkpoint_every_kimg) or stop_requested
            if snapshot_due or checkpoint_due:
                for module in self.step.modules.values():
                    if isinstance(module, FittedToData):
                        module.fit_to_data(self.data)
                self.step.prepare_export()
            if snapshot_due:
                _write_snapshots(self.step, self.fixed, tc.seed, self.run_dir, self.images_seen, self.logger)
            if checkpoint_due:
                self.save()
        progress.close()
        return timed_out

    def follow_schedules(self) -> None:
        """Learning rates and growth (ProGAN) as functions of images seen."""
        for name, opt in self.step.optimizers.items():
            _set_learning_rate(opt, lr_factor(self.schedules[name], self.images_seen, self.total))
        for module in self.step.modules.values():
            if isinstance(module, Staged):
                module.set_progress(self.images_seen)

    def run_iteration(self, precision: precision_probe.Precision, images_before: int) -> int:
        """One iteration: every phase, with its repeats. Returns the real images it drew (all processes)."""
        drawn, batch = 0, None
        for phase in self.phases:
            optimizer = self.step.optimizers[phase.optimizer]
            with _training_only(self.step, phase, self.wrapped):
                for _ in range(phase.repeats):
                    if not phase.reuse_batch or batch is None:
                        batch = next(self.stream)
                        drawn += len(batch) * self.dist.world_size
                    optimizer.zero_grad(set_to_none=True)
                    with self.autocasts[precision]:
                        out = phase.loss(batch)
                    if not torch.isfinite(out.loss):
                        raise TrainingDiverged(
                            f"{phase.name} loss became {out.loss.item()} "
                            f"{self.where(images_before + drawn)}{_bad_fields(batch)}"
                        )
                    out.loss.backward()
                    grad_norm = self.gradient_norm(phase.name)
                    if not torch.isfinite(grad_norm):  # checked before the step, so the weights stay finite
                        raise TrainingDiverged(
                            f"{phase.name} gradient norm became {grad_norm.item()} "
                            f"{self.where(images_before + drawn)} while its "
                            f"loss was finite ({out.loss.item():.4g}); first in "
                            f"{_bad_gradient(self.step.modules)}{_bad_fields(batch)}"
                        )
                    optimizer.step()
                    if phase.after_step is not None:
                        phase.after_step()
                    self.meter.add(phase.name, {"loss": out.loss.detach(), **out.stats, "grad_norm": grad_norm})
        return drawn

    def where(self, images: int) -> str:
        """The current iteration and its kimg, for divergence messages."""
        return f"at iteration {self.iteration} ({images / 1000:.1f} kimg)"

    def gradient_norm(self, phase: str) -> torch.Tensor:
        """The phase's total gradient norm, clipped to train.grad_clip when that is set."""
        if self.tc.grad_clip > 0:
            return torch.nn.utils.clip_grad_norm_(self.params[phase], self.tc.grad_clip)
        # Without clipping, only the norm (for the stats and the NaN check): clip_grad_norm_ would also multiply
        # every gradient by 1.0, 10 % of a VAE step on this CPU.
        return torch.nn.utils.get_total_norm([p.grad for p in self.params[phase] if p.grad is not None])

    def probe_precision(self) -> precision_probe.Precision:
        """train.precision=auto: time both precisions on this run's own iterations, then undo them."""
        before = _capture(self.step, self.stream)
        try:
            # all time the same: process 0's
            timed = distributed.broadcast_object(precision_probe.candidates(self.device))
            seconds = precision_probe.time_precisions(
                lambda p: self.run_iteration(p, self.images_seen), distributed.broadcast_object, timed
            )
        finally:
            _restore(self.step, self.stream, before)
        # every process trains alike: process 0's
        chosen = distributed.broadcast_object(precision_probe.choose(seconds))
        self.logger.message(precision_probe.describe(seconds, chosen))
        return chosen

    def roll_back(self, diverged: TrainingDiverged) -> None:
        """train.on_nan=rollback: reload the last good checkpoint with the learning rates halved; else stop."""
        tc = self.tc
        if (
            tc.on_nan != "rollback"
            or self.rollbacks >= tc.max_rollbacks
            or not ckpt.list_checkpoints(self.run_dir / "checkpoints")
        ):
            raise _stop(diverged, tc, self.rollbacks, self.run_dir, self.logger) from None
        self.rollbacks += 1
        checkpoint, _ = ckpt.good_checkpoint(self.run_dir)
        state = self.restore(checkpoint)
        for opt in self.step.optimizers.values():  # halvings since that checkpoint was written
            for group in opt.param_groups:
                group["initial_lr"] *= 0.5 ** (self.rollbacks - state.get("rollbacks", 0))
        self.images_seen, self.iteration = state["images_seen"], state["iteration"]
        self.meter = Meter()
        self.logger.warning(
            f"{diverged}; rolled back to {checkpoint.name} with the learning rates halved "
            f"(rollback {self.rollbacks} of train.max_rollbacks={tc.max_rollbacks})",
            self.images_seen,
        )

    def log(self, images_per_sec: float) -> dict[str, float]:
        """A row of stats.jsonl (and TensorBoard) for the window that just ended, and the step's health check."""
        record = {
            "kimg": self.images_seen / 1000,
            "iteration": self.iteration,
            **self.meter.averages(),
            **{f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.step.optimizers.items()},
            "images_per_sec": images_per_sec,
        }
        self.logger.stats(record, self.images_seen)
        for warning in self.step.check_health(record, self.iteration):
            self.logger.warning(
                f"iteration {self.iteration} ({self.images_seen / 1000:.1f} kimg): {warning}", self.images_seen
            )
        return record

    def restore(self, checkpoint: Path, state: dict | None = None) -> dict:
        """Modules, optimisers, step state, data position and RNGs from ``checkpoint`` (its training state
        ``state`` when already read); returns that training state."""
        ckpt.load_modules(checkpoint, self.step.modules)
        state = state if state is not None else ckpt.load_training_state(checkpoint)
        if state.get("version") != VERSION:
            raise ConfigError(
                f"{checkpoint} was written by another genlab version (training state {state.get('version')}, "
                f"this one reads {VERSION}); continue it with that version"
            )
        if len(state["data"]) != self.dist.world_size:
            raise ConfigError(
                f"{checkpoint} was written by {len(state['data'])} processes; resume it with as many "
                f"(got {self.dist.world_size}) so that every process continues its own data order"
            )
        for name, opt in self.step.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.step.load_state_dict(state["step"])
        self.stream.load_state_dict(state["data"][self.dist.rank])
        ckpt.restore_rng(state["rng"][self.dist.rank])
        return state

    def save(self) -> None:
        """A checkpoint of everything a resume needs, and the exported model, written atomically by process 0."""
        step, dist = self.step, self.dist
        state = {
            "version": VERSION,
            "images_seen": self.images_seen,
            "iteration": self.iteration,
            "rollbacks": self.rollbacks,  # learning-rate halvings after NaNs so far (train.on_nan=rollback)
            "precision": self.precision,  # train.precision=auto's choice, kept so that a resume trains the same way
            "cpu_linear": self.linear_backend,  # train.cpu_linear's choice, likewise
            "optimizers": {name: opt.state_dict() for name, opt in step.optimizers.items()},
            "step": step.state_dict(),
            "data": _gather(self.stream.state_dict()),
            "rng": _gather(ckpt.capture_rng()),
        }
        failure = None
        if dist.is_main:
            export = ckpt.Export(
                step.modules[step.export.module].state_dict(),
                {
                    "model": config_to_dict(self.config)["model"],
                    "role": step.export.role,
                    "data": {"name": self.data.name, "spec": spec_to_json(self.data.spec)},
                    "images_seen": self.images_seen,
                },
            )
            try:
                ckpt.save_checkpoint(
                    self.run_dir / "checkpoints",
                    self.images_seen,
                    step.modules,
                    state,
                    self.tc.keep_checkpoints,
                    export,
                )
            except RunError as err:  # e.g. a full disk: the previous checkpoint is kept
                failure = err
        if distributed.any_rank(failure is not None):  # every process stops, none waits at the barrier
            failure = failure or RunError("process 0 could not write a checkpoint; its message says why")
            with contextlib.suppress(OSError):  # log.txt may be on the full disk too
                self.logger.message(f"ERROR: {failure}", echo=False)
            raise failure
        distributed.barrier()

    def finish(self, timed_out: bool) -> None:
        if self.images_seen < self.total:
            budget = f" (train.max_minutes={self.tc.max_minutes:g} ran out)" if timed_out else ""
            self.logger.message(
                f"stopped at {self.images_seen / 1000:.1f} of {self.tc.kimg:g} kimg{budget}; "
                f"continue with: genlab train --resume {self.run_dir}"
            )
        else:
            shown = f"; images in {self.run_dir / 'samples'}" if (self.run_dir / "samples").is_dir() else ""
            self.logger.message(f"finished {self.images_seen / 1000:.1f} kimg{shown}")
        self.logger.close()


@contextmanager
def _writer_lock(resume: str | Path | None, dist: distributed.DistInfo):
    """A resumed run's writer lock, held by process 0 for the run's life; every process is refused together."""
    if resume is None:  # a new folder is locked as soon as it is made (_run_folder)
        yield
        return
    with contextlib.ExitStack() as held:
        refusal = None
        if dist.is_main:
            try:
                held.enter_context(run_lock.hold(Path(resume)))
            except RunError as err:
                refusal = err
        refusal = distributed.broadcast_object(None if refusal is None else str(refusal))
        if refusal is not None:
            raise run_lock.RunLocked(refusal)
        yield


@contextmanager
def _run_folder(resume: str | Path | None, config: Config, data: TensorDataset, dist: distributed.DistInfo):
    """The run's folder: ``resume``, or a new numbered one (made by process 0) holding config.yaml and data.json.

    A new folder that has no checkpoint when training fails (a bad start, a full disk at the
    first checkpoint, a second Ctrl-C) is removed, so failed starts leave nothing half-made.
    """
    if resume is not None:
        yield Path(resume)
        return
    run_dir = create_run_dir(config.train.out_dir, config.name) if dist.is_main else None
    run_dir = Path(distributed.broadcast_object(str(run_dir)))
    try:
        with run_lock.hold(run_dir) if dist.is_main else contextlib.nullcontext():
            if dist.is_main:
                write_run_files(run_dir, config, data)
            yield run_dir
    except BaseException as err:
        if not dist.is_main or ckpt.list_checkpoints(run_dir / "checkpoints"):
            raise
        shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(err, GenlabError):
            raise type(err)(
                f"{err} (no checkpoint had been written, so the new run folder {run_dir} was removed)"
            ) from None
        raise


def _schedules(config: Config, step: Step):
    unknown = sorted(set(config.train.lr_schedules) - set(step.optimizers))
    if unknown:
        raise ConfigError(
            f"train.lr_schedules names optimisers {unknown} that objective {config.objective.name!r} "
            f"does not have; it has {sorted(step.optimizers)}"
        )
    return {name: config.train.lr_schedules.get(name, config.train.lr_schedule) for name in step.optimizers}


def _set_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def _stop(
    diverged: TrainingDiverged, tc: TrainConfig, rollbacks: int, run_dir: Path, logger: RunLogger
) -> TrainingDiverged:
    """The error that ends a diverged run, logged: what became NaN/Inf and where, what is kept, what to try."""
    kept = (
        f"the last good checkpoint in {run_dir / 'checkpoints'} is kept"
        if ckpt.list_checkpoints(run_dir / "checkpoints")
        else "no checkpoint had been written yet"
    )
    if tc.on_nan == "rollback" and rollbacks:
        advice = f"It diverged again after {rollbacks} rollbacks with halved learning rates; lower them further"
    else:
        advice = "Lower the learning rate, enable train.grad_clip or set train.on_nan=rollback"
    message = f"{diverged}; {kept}. {advice}."
    logger.message(f"ERROR: {message}", echo=False)
    return TrainingDiverged(message)


def _bad_fields(batch: Batch) -> str:
    """Which float fields of ``batch`` hold NaN/Inf, as a clause for the divergence message ("" when none)."""
    bad = [name for name, t in batch.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    return f"; the batch's {', '.join(map(repr, bad))} already held NaN/Inf (check the data)" if bad else ""


def _bad_gradient(modules: dict[str, nn.Module]) -> str:
    """The first parameter (``"G.net.0.weight"``) whose gradient holds NaN/Inf."""
    for name, module in modules.items():
        for key, p in module.named_parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                return f"{name}.{key}"
    return "no parameter (the norm itself overflowed)"


def _wrap_for_ddp(step: Step, phases: list[Phase], device: torch.device, sync_batchnorm: bool) -> dict[str, nn.Module]:
    """DDP wrappers of every module some phase trains (EMA copies and frozen modules stay plain).

    ``sync_batchnorm`` first turns the batch norms of those modules into SyncBatchNorm, in place.
    """
    ids = [device.index] if device.type == "cuda" else None
    trained = {name for phase in phases for name in phase.trains}
    if sync_batchnorm:
        _sync_batchnorm(step, trained)
    # A staged model's idle parts (a growing model's not-yet-faded-in layers, a VQ-VAE's prior in its first stage)
    # get no gradient; DDP must look for such parameters each iteration, a graph traversal, so only they ask for it.
    return {
        name: nn.parallel.DistributedDataParallel(m, device_ids=ids, find_unused_parameters=isinstance(m, Staged))
        for name, m in step.modules.items()
        if name in trained
    }


def _sync_batchnorm(step: Step, names: set[str]) -> None:
    """Replace the batch norms of ``step.modules[name]`` for each of ``names`` by SyncBatchNorm.

    The new layers keep the old parameters and buffers (the optimisers' tensors) and the same
    state-dict keys, so checkpoints and the export still load into the plain model.
    """
    for name in names:
        step.modules[name] = nn.SyncBatchNorm.convert_sync_batchnorm(step.modules[name])


def _capture(step: Step, stream: BatchStream) -> dict:
    """An in-memory copy of everything a training iteration changes, for ``_restore``."""
    return copy.deepcopy(
        {
            "modules": {name: m.state_dict() for name, m in step.modules.items()},
            "optimizers": {name: opt.state_dict() for name, opt in step.optimizers.items()},
            "step": step.state_dict(),
            "data": stream.state_dict(),
            "rng": ckpt.capture_rng(),
        }
    )


def _restore(step: Step, stream: BatchStream, state: dict) -> None:
    for name, module in step.modules.items():
        module.load_state_dict(state["modules"][name])
    for name, opt in step.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    step.load_state_dict(state["step"])
    stream.load_state_dict(state["data"])
    ckpt.restore_rng(state["rng"])


@contextmanager
def _training_only(step: Step, phase: Phase, wrapped: dict[str, nn.Module]):
    """While ``phase`` runs, only the modules it trains take gradients and (under DDP) synchronise.

    The others are called unwrapped with ``requires_grad`` off, so that backward passes
    through them (G's loss through D) fill none of their gradients; restored even if the loss raises.
    """
    frozen = [
        p for name, m in step.modules.items() if name not in phase.trains for p in m.parameters() if p.requires_grad
    ]
    for p in frozen:
        p.requires_grad_(False)
    step.nets = {name: wrapped.get(name, m) if name in phase.trains else m for name, m in step.modules.items()}
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        step.nets = step.modules


def resume_config(run_dir: Path, given: Config | None) -> Config:
    """The config that resuming ``run_dir`` trains with: the run's own, or ``given`` where only keys that
    an exact resume allows to change differ (a ConfigError naming the others)."""
    _, saved, _ = read_run(run_dir)
    if given is None:
        return saved
    old, new = _flatten(config_to_dict(saved)), _flatten(config_to_dict(given))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir} with a different {', '.join(changed)}: exact resume needs the same "
            f"config (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)"
        )
    return dataclasses.replace(saved, data=given.data, train=given.train)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _crossed(before: int, after: int, every_kimg: float) -> bool:
    every = every_kimg * 1000
    return every > 0 and int(after // every) > int(before // every)


def _gather(obj) -> list:
    """``obj`` from every rank, in rank order (rank states for an exact multi-process resume)."""
    if not torch.distributed.is_initialized():
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def _write_snapshots(step: Step, fixed: Batch, seed: int, run_dir: Path, images_seen: int, logger: RunLogger) -> None:
    grids = step.snapshots(fixed, seed)
    for name, grid in grids.items():
        save_grid(grid.images, run_dir / "samples" / f"{name}-{images_seen // 1000:06d}kimg.png", nrow=grid.nrow)
        save_grid(grid.images, run_dir / "samples" / f"{name}-latest.png", nrow=grid.nrow)
        logger.image(name, make_grid(grid.images, nrow=grid.nrow), images_seen)
    if "samples" in grids:  # the fixed latents' first row at every snapshot, oldest on top
        progress_strip(run_dir, "samples", nrow=grids["samples"].nrow)


def _summary(record: dict[str, float]) -> str:
    keys = [k for k in record if k.endswith("/loss")][:3]
    return " ".join(f"{k.split('/')[0]}={record[k]:.3g}" for k in keys)


def _progress_bar(enabled: bool, start: int, total: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="img", unit_scale=True, disable=not enabled, dynamic_ncols=True)


class _Flag:
    is_set = False


@contextmanager
def _stop_signals():
    """Ctrl-C / SIGTERM ask the loop to stop after the current iteration and checkpoint.

    A second Ctrl-C interrupts at once. Only the main thread may install handlers.
    """
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.is_set = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
