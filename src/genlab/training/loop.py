"""The one training loop. Every model family plugs in through a ``Step`` (see step.py).

``train()`` owns batches, phase repeats, which modules each phase trains (requires_grad
and DDP), learning-rate schedules, autocast, backward, gradient clipping, NaN checks,
logging, snapshots, checkpoints with the exported model, exact resume, signals and DDP
wrapping.
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
from genlab.models.protocols import DataInitialised, FittedToData, Progressive
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
RESUMABLE_CHANGES = {"data.root"} | {f"train.{key}" for key in (
    "kimg", "log_every_kimg", "snapshot_every_kimg", "checkpoint_every_kimg", "keep_checkpoints", "progress_bar", "tensorboard",
    "on_nan", "max_rollbacks", "max_minutes")}


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
    modules = {name: m.to(device, memory_format=layout) for name, m in modules.items()}
    return OBJECTIVES.get(config.objective.name).builder(config.objective, modules, spec, config.train)


def train(config: Config | None = None, resume: str | Path | None = None, stop_after_kimg: float | None = None) -> Path:
    """Train ``config`` in a new run folder, or continue the run folder ``resume`` exactly.

    ``stop_after_kimg`` stops early (with a checkpoint) once that many thousand images
    have been seen, as Ctrl-C or SIGTERM do, and ``train.max_minutes`` once the loop has run
    that long (counted from its first iteration); ``--resume`` continues from there.
    A resume starts from the newest checkpoint that passes its checksums (saying so when
    that is not the newest). A new run's folder is made only once the data and the modules
    are built, and removed again if training fails before its first checkpoint.
    Returns the run folder.
    """
    if stop_after_kimg is not None and not stop_after_kimg > 0:
        raise ConfigError(f"stop_after_kimg must be > 0, got {stop_after_kimg}")
    if resume is not None:
        config = _resume_config(Path(resume), config)
    elif config is None:
        raise ConfigError("train() needs a config or a run folder to resume")
    tc = config.train
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    device = distributed.resolve_device(tc.device)
    dist = distributed.init_from_env(device)
    if tc.sync_batchnorm and dist.world_size > 1 and device.type != "cuda":
        raise ConfigError(f"train.sync_batchnorm=true needs CUDA GPUs: torch {torch.__version__}'s SyncBatchNorm does not "
                          f"run on {device.type} tensors, and these {dist.world_size} processes train on {device.type}. "
                          "Run one process per GPU (train.device=auto), or set train.sync_batchnorm=false so that each "
                          "process normalises with its own batch's statistics")
    with _writer_lock(resume, dist):
        return _train(config, resume, stop_after_kimg, device, dist)


def _train(config: Config, resume: str | Path | None, stop_after_kimg: float | None, device: torch.device,
           dist: distributed.DistInfo) -> Path:
    tc = config.train
    torch.manual_seed(tc.seed * 1000 + dist.rank)  # model init is synced by DDP; data order is not the RNG's

    data = load_dataset(config.data, "train")
    latest, skipped = ckpt.good_checkpoint(resume) if resume is not None else (None, [])
    step = build_step(config, data.spec, device, data=None if resume is not None else data)
    saved = ckpt.load_training_state(latest) if latest else None
    # A resume keeps the run's backend (checkpoints from before the choice existed trained on the BLAS).
    requested = saved.get("cpu_linear", "blas") if saved else tc.cpu_linear
    linear_backend, linear_note = cpu_linear.setup(requested, device, step.modules.values(), distributed.broadcast_object)
    phases = step.phases()
    schedules = _schedules(config, step)
    stream = BatchStream(data, tc.batch_size, tc.seed, device, dist.rank, dist.world_size,
                         MEMORY_FORMATS[tc.memory_format])
    fixed = data.batch(slice(0, SNAPSHOT_SIZE), device)

    def restore(checkpoint: Path, state: dict | None = None) -> dict:
        """Modules, optimisers, step state, data position and RNGs from ``checkpoint`` (its training state
        ``state`` when already read); returns that training state."""
        ckpt.load_modules(checkpoint, step.modules)
        state = state if state is not None else ckpt.load_training_state(checkpoint)
        if state.get("version") != VERSION:
            raise ConfigError(f"{checkpoint} was written by another genlab version (training state {state.get('version')}, "
                              f"this one reads {VERSION}); continue it with that version")
        if len(state["data"]) != dist.world_size:
            raise ConfigError(f"{checkpoint} was written by {len(state['data'])} processes; resume it with as many "
                              f"(got {dist.world_size}) so that every process continues its own data order")
        for name, opt in step.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        step.load_state_dict(state["step"])
        stream.load_state_dict(state["data"][dist.rank])
        ckpt.restore_rng(state["rng"][dist.rank])
        return state

    images_seen = iteration = rollbacks = 0
    precision = None if tc.precision == "auto" else tc.precision  # auto: measured once the run folder exists
    fallback = None
    if resume is not None:
        fallback = ckpt.fallback_note(latest, skipped)
        state = restore(latest, saved)
        images_seen, iteration, rollbacks = state["images_seen"], state["iteration"], state.get("rollbacks", 0)
        precision = precision or state.get("precision")

    total = int(tc.kimg * 1000)
    stop_at = total if stop_after_kimg is None else min(total, int(stop_after_kimg * 1000))
    params = {phase.name: [p for g in step.optimizers[phase.optimizer].param_groups for p in g["params"]] for phase in phases}
    for opt in step.optimizers.values():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])  # the base rate schedules scale; checkpointed with the optimiser
    wrapped = _wrap_for_ddp(step, phases, device, tc.sync_batchnorm) if dist.world_size > 1 else {}
    meter = Meter()
    autocasts = {p: torch.autocast(device.type, dtype=torch.bfloat16, enabled=p == "bf16") for p in precision_probe.PRECISIONS}
    stop_requested = False

    def run_iteration(precision: str, images_before: int) -> int:
        """One iteration: every phase, with its repeats. Returns the real images it drew (all processes)."""
        drawn, batch = 0, None

        def where() -> str:  # for the divergence messages only
            return f"at iteration {iteration} ({(images_before + drawn) / 1000:.1f} kimg)"

        for phase in phases:
            optimizer = step.optimizers[phase.optimizer]
            with _training_only(step, phase, wrapped):
                for _ in range(phase.repeats):
                    if not phase.reuse_batch or batch is None:
                        batch = next(stream)
                        drawn += len(batch) * dist.world_size
                    optimizer.zero_grad(set_to_none=True)
                    with autocasts[precision]:
                        out = phase.loss(batch)
                    if not torch.isfinite(out.loss):
                        raise TrainingDiverged(f"{phase.name} loss became {out.loss.item()} {where()}{_bad_fields(batch)}")
                    out.loss.backward()
                    # Without clipping, only the norm (for the stats and the check below): clip_grad_norm_ would
                    # also multiply every gradient by 1.0, 10 % of a VAE step on this CPU.
                    grad_norm = (torch.nn.utils.clip_grad_norm_(params[phase.name], tc.grad_clip) if tc.grad_clip > 0 else
                                 torch.nn.utils.get_total_norm([p.grad for p in params[phase.name] if p.grad is not None]))
                    if not torch.isfinite(grad_norm):  # checked before the step, so the weights stay finite
                        raise TrainingDiverged(f"{phase.name} gradient norm became {grad_norm.item()} {where()} while its loss "
                                               f"was finite ({out.loss.item():.4g}); first in {_bad_gradient(step.modules)}"
                                               f"{_bad_fields(batch)}")
                    optimizer.step()
                    if phase.after_step is not None:
                        phase.after_step()
                    meter.add(phase.name, {"loss": out.loss.detach(), **out.stats, "grad_norm": grad_norm})
        return drawn

    def probe_precision() -> str:
        """train.precision=auto: time both precisions on this run's own iterations, then undo them."""
        before = _capture(step, stream)
        try:
            timed = distributed.broadcast_object(precision_probe.candidates(device))  # all time the same: process 0's
            seconds = precision_probe.time_precisions(lambda p: run_iteration(p, images_seen), distributed.broadcast_object,
                                                      timed)
        finally:
            _restore(step, stream, before)
        chosen = distributed.broadcast_object(precision_probe.choose(seconds))  # every process trains alike: process 0's
        logger.message(precision_probe.describe(seconds, chosen))
        return chosen

    def save() -> None:
        state = {
            "version": VERSION,
            "images_seen": images_seen,
            "iteration": iteration,
            "rollbacks": rollbacks,  # learning-rate halvings after NaNs so far (train.on_nan=rollback)
            "precision": precision,  # train.precision=auto's choice, kept so that a resume trains the same way
            "cpu_linear": linear_backend,  # train.cpu_linear's choice, likewise
            "optimizers": {name: opt.state_dict() for name, opt in step.optimizers.items()},
            "step": step.state_dict(),
            "data": _gather(stream.state_dict()),
            "rng": _gather(ckpt.capture_rng()),
        }
        failure = None
        if dist.is_main:
            export = ckpt.Export(step.modules[step.export.module].state_dict(), {
                "model": config_to_dict(config)["model"], "role": step.export.role,
                "data": {"name": data.name, "spec": spec_to_json(data.spec)}, "images_seen": images_seen})
            try:
                ckpt.save_checkpoint(run_dir / "checkpoints", images_seen, step.modules, state, tc.keep_checkpoints, export)
            except RunError as err:  # e.g. a full disk: the previous checkpoint is kept
                failure = err
        if distributed.any_rank(failure is not None):  # every process stops, none waits at the barrier
            failure = failure or RunError("process 0 could not write a checkpoint; its message says why")
            with contextlib.suppress(OSError):  # log.txt may be on the full disk too
                logger.message(f"ERROR: {failure}", echo=False)
            raise failure
        distributed.barrier()

    with _stop_signals() as stop_flag, _run_folder(resume, config, data, dist) as run_dir:
        logger = RunLogger(run_dir, tc.tensorboard, enabled=dist.is_main)
        logger.message(f"{'resuming' if resume else 'training'} {run_dir} at {images_seen / 1000:.1f} kimg on {device}"
                       f"{f' x{dist.world_size}' if dist.world_size > 1 else ''}")
        if fallback:
            logger.warning(fallback, images_seen)
        if linear_note:
            logger.message(linear_note)
        if precision is None:
            precision = probe_precision()
            meter = Meter()
        elif precision == "bf16" and not precision_probe.native_bf16(device):
            logger.warning(f"train.precision=bf16 on {device}, which has no native bf16 kernels: bf16 runs on slow "
                           "fallbacks here (a DCGAN step 12-17x slower than fp32 on AVX2 CPUs); set train.precision=fp32 "
                           "or auto", images_seen)
        progress = _progress_bar(tc.progress_bar and dist.is_main, images_seen, total)
        window_start, window_images = time.perf_counter(), images_seen
        deadline, timed_out = window_start + 60 * tc.max_minutes, False
        while images_seen < stop_at and not stop_requested:
            before = images_seen
            for name, opt in step.optimizers.items():
                _set_learning_rate(opt, lr_factor(schedules[name], images_seen, total))
            for module in step.modules.values():  # growth schedules (ProGAN), like the learning rates, follow images seen
                if isinstance(module, Progressive):
                    module.set_progress(images_seen)
            try:
                images_seen += run_iteration(precision, images_seen)
            except TrainingDiverged as diverged:
                if tc.on_nan != "rollback" or rollbacks >= tc.max_rollbacks or not ckpt.list_checkpoints(run_dir / "checkpoints"):
                    raise _stop(diverged, tc, rollbacks, run_dir, logger) from None
                rollbacks += 1
                checkpoint, _ = ckpt.good_checkpoint(run_dir)
                state = restore(checkpoint)
                for opt in step.optimizers.values():  # halvings since that checkpoint was written
                    for group in opt.param_groups:
                        group["initial_lr"] *= 0.5 ** (rollbacks - state.get("rollbacks", 0))
                images_seen, iteration, window_images = state["images_seen"], state["iteration"], state["images_seen"]
                meter, progress.n = Meter(), images_seen
                logger.warning(f"{diverged}; rolled back to {checkpoint.name} with the learning rates halved "
                               f"(rollback {rollbacks} of train.max_rollbacks={tc.max_rollbacks})", images_seen)
                continue
            iteration += 1
            progress.update(images_seen - before)
            # Every rank must agree on a timed stop, or one would wait for the others at the next collective.
            timed_out = tc.max_minutes > 0 and distributed.any_rank(time.perf_counter() >= deadline)
            stop_requested = distributed.any_rank(stop_flag.is_set) or images_seen >= stop_at or timed_out

            if _crossed(before, images_seen, tc.log_every_kimg) or images_seen >= stop_at or timed_out:
                now = time.perf_counter()
                record = {"kimg": images_seen / 1000, "iteration": iteration, **meter.averages(),
                          **{f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in step.optimizers.items()},
                          "images_per_sec": (images_seen - window_images) / max(now - window_start, 1e-9)}
                window_start, window_images = now, images_seen
                logger.stats(record, images_seen)
                progress.set_postfix_str(_summary(record), refresh=False)
                for warning in step.check_health(record, iteration):
                    logger.warning(f"iteration {iteration} ({images_seen / 1000:.1f} kimg): {warning}", images_seen)
            # A stop (time budget, signal) shows where the run stopped, as the end of a run does; snapshots draw from
            # their own seeded generators, so an extra one leaves the resumed run exact.
            snapshot_due = dist.is_main and (_crossed(before, images_seen, tc.snapshot_every_kimg) or images_seen >= total
                                             or (stop_requested and tc.snapshot_every_kimg > 0))
            checkpoint_due = _crossed(before, images_seen, tc.checkpoint_every_kimg) or stop_requested
            if snapshot_due or checkpoint_due:
                for module in step.modules.values():
                    if isinstance(module, FittedToData):
                        module.fit_to_data(data)
            if snapshot_due:
                _write_snapshots(step, fixed, tc.seed, run_dir, images_seen, logger)
            if checkpoint_due:
                save()
    progress.close()
    if images_seen < total:
        budget = f" (train.max_minutes={tc.max_minutes:g} ran out)" if timed_out else ""
        logger.message(f"stopped at {images_seen / 1000:.1f} of {tc.kimg:g} kimg{budget}; "
                       f"continue with: genlab train --resume {run_dir}")
    else:
        shown = f"; images in {run_dir / 'samples'}" if (run_dir / "samples").is_dir() else ""
        logger.message(f"finished {images_seen / 1000:.1f} kimg{shown}")
    logger.close()
    return run_dir


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
            raise type(err)(f"{err} (no checkpoint had been written, so the new run folder {run_dir} was removed)") from None
        raise


def _schedules(config: Config, step: Step):
    unknown = sorted(set(config.train.lr_schedules) - set(step.optimizers))
    if unknown:
        raise ConfigError(f"train.lr_schedules names optimisers {unknown} that objective {config.objective.name!r} "
                          f"does not have; it has {sorted(step.optimizers)}")
    return {name: config.train.lr_schedules.get(name, config.train.lr_schedule) for name in step.optimizers}


def _set_learning_rate(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def _stop(diverged: TrainingDiverged, tc: TrainConfig, rollbacks: int, run_dir: Path, logger: RunLogger) -> TrainingDiverged:
    """The error that ends a diverged run, logged: what became NaN/Inf and where, what is kept, what to try."""
    kept = (f"the last good checkpoint in {run_dir / 'checkpoints'} is kept" if ckpt.list_checkpoints(run_dir / "checkpoints")
            else "no checkpoint had been written yet")
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
    # A growing model's not-yet-faded-in layers get no gradient; DDP must look for such parameters
    # each iteration, which costs a graph traversal, so only those models ask for it.
    return {name: nn.parallel.DistributedDataParallel(m, device_ids=ids, find_unused_parameters=isinstance(m, Progressive))
            for name, m in step.modules.items() if name in trained}


def _sync_batchnorm(step: Step, names: set[str]) -> None:
    """Replace the batch norms of ``step.modules[name]`` for each of ``names`` by SyncBatchNorm.

    The new layers keep the old parameters and buffers (the optimisers' tensors) and the same
    state-dict keys, so checkpoints and the export still load into the plain model.
    """
    for name in names:
        step.modules[name] = nn.SyncBatchNorm.convert_sync_batchnorm(step.modules[name])


def _capture(step: Step, stream: BatchStream) -> dict:
    """An in-memory copy of everything a training iteration changes, for ``_restore``."""
    return copy.deepcopy({
        "modules": {name: m.state_dict() for name, m in step.modules.items()},
        "optimizers": {name: opt.state_dict() for name, opt in step.optimizers.items()},
        "step": step.state_dict(), "data": stream.state_dict(), "rng": ckpt.capture_rng(),
    })


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
    frozen = [p for name, m in step.modules.items() if name not in phase.trains for p in m.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    step.nets = {name: wrapped.get(name, m) if name in phase.trains else m for name, m in step.modules.items()}
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        step.nets = step.modules


def _resume_config(run_dir: Path, given: Config | None) -> Config:
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
