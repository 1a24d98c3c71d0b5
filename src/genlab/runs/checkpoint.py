"""Checkpoints: state, never pickled code, written atomically.

A checkpoint is a folder ``checkpoints/ckpt-<images seen>/`` holding

- ``modules.safetensors``: every module's state, keys ``<module>.<param>``;
- ``training_state.pt``: optimisers, the step's own state, RNG states, data position,
  counters; only tensors and plain containers, read back with ``torch.load(weights_only=True)``;
- the export: ``model.safetensors`` (the exported model's weights alone) and ``model.yaml``
  (its model config, role and data spec), all that ``genlab.load`` reads;
- ``checksums.json``: the SHA-256 of each file above, written last.

A zoo entry's checkpoint (:mod:`genlab.runs.zoo`) holds the export alone, in fp16, and
``modules.safetensors`` only for other roles a tool may ask for (CycleGAN's ``G_BA``); its
checksums say ``export_only``.

The folder is written under a temporary name, fsynced and renamed, so a crash mid-write
never leaves a checkpoint that looks complete; a write that fails (a full disk) removes
the temporary folder and leaves the previous checkpoint as it was. Readers verify the
checksums first and take the newest checkpoint that passes (:func:`good_checkpoint`),
so a flipped byte or a truncated file is reported by name, never loaded.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from genlab.errors import RunError
from genlab.runs.locations import resolve

MODULES_FILE = "modules.safetensors"
STATE_FILE = "training_state.pt"
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_INFO = "model.yaml"
CHECKSUMS_FILE = "checksums.json"
EXPORT_FORMAT = 1
PREFIX = "ckpt-"
REQUIRED = (MODULES_FILE, STATE_FILE)  # every checkpoint; the export files whenever there is an export
EXPORT_ONLY = (EXPORT_WEIGHTS, EXPORT_INFO)  # a zoo entry's checkpoint: the exported model (and other roles) alone
KNOWN = (*REQUIRED, EXPORT_WEIGHTS, EXPORT_INFO)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Export(NamedTuple):
    weights: dict[str, Tensor]  # the exported module's state dict
    info: dict[str, Any]  # model config, role, data spec: written as model.yaml


def save_checkpoint(
    checkpoint_dir: Path,
    images_seen: int,
    modules: dict[str, nn.Module],
    state: dict[str, Any],
    keep: int,
    export: Export | None = None,
) -> Path:
    """Write one checkpoint (and its export) atomically and keep only the newest ``keep``.

    A failed write (OSError, e.g. ENOSPC) removes the temporary folder and raises a
    RunError saying what to free; the checkpoints already there are untouched.
    """
    final = checkpoint_dir / f"{PREFIX}{images_seen:012d}"
    tmp = checkpoint_dir / f".tmp-{final.name}-{os.getpid()}"
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        for key, value in module.state_dict().items()
    }
    try:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for stale in checkpoint_dir.glob(".tmp-*"):  # ours, or left by a writer killed mid-write (kill -9)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        save_file(tensors, tmp / MODULES_FILE)
        torch.save(state, tmp / STATE_FILE)
        names = list(REQUIRED)
        if export is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in export.weights.items()}, tmp / EXPORT_WEIGHTS)
            (tmp / EXPORT_INFO).write_text(yaml.safe_dump({"format": EXPORT_FORMAT, **export.info}, sort_keys=False))
            names += [EXPORT_WEIGHTS, EXPORT_INFO]
        # Hashed from the files as written (read back from the page cache), last, so that a
        # checkpoint with a checksums.json is one whose every file was complete.
        checksums = {"algorithm": "sha256", "files": {name: file_sha256(tmp / name) for name in names}}
        (tmp / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=2) + "\n")
        for path in (*(tmp / name for name in (*names, CHECKSUMS_FILE)), tmp):
            _fsync(path)
        if final.exists():  # the same point saved twice (e.g. a stop right on the cadence)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(checkpoint_dir)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunError(_write_failure(err, final, _nbytes((tensors, state, export)))) from None
    for old in list_checkpoints(checkpoint_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Checkpoint folders (renamed into place, so once complete; not yet verified), oldest first."""
    if not checkpoint_dir.is_dir():
        return []
    return sorted(
        (p for p in checkpoint_dir.iterdir() if p.is_dir() and p.name.startswith(PREFIX)), key=lambda p: p.name
    )


def kimg_of(checkpoint: Path) -> float:
    """The training images a checkpoint had seen, in thousands, from its folder's name (``ckpt-<images seen>``)."""
    digits = checkpoint.name.removeprefix(PREFIX)
    if not (checkpoint.name.startswith(PREFIX) and digits.isdigit()):
        raise RunError(f"{checkpoint} is not a checkpoint folder (ckpt-<images seen>); pick one under RUN/checkpoints/")
    return int(digits) / 1000


def verify_checkpoint(checkpoint: Path) -> None:
    """RunError naming the first file of ``checkpoint`` that is missing, unlisted or not its recorded SHA-256."""
    sums_path = checkpoint / CHECKSUMS_FILE
    if not sums_path.is_file():
        raise RunError(f"{CHECKSUMS_FILE} is missing (the folder is damaged, or from a genlab that wrote no checksums)")
    try:
        sums = json.loads(sums_path.read_text())
        listed = sums["files"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in listed.items()):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunError(f"{CHECKSUMS_FILE} is unreadable (not the JSON genlab writes)") from None
    required = EXPORT_ONLY if sums.get("export_only") else REQUIRED
    for name in KNOWN:
        path = checkpoint / name
        if name not in listed:
            if name in required or path.exists():
                raise RunError(f"{name} is not listed in {CHECKSUMS_FILE}")
        elif not path.is_file():
            raise RunError(f"{name} is missing")
        elif (actual := file_sha256(path)) != listed[name]:
            raise RunError(
                f"{name} does not match its checksum (sha256 {actual[:12]}..., recorded {listed[name][:12]}...): "
                f"the file is damaged or was replaced"
            )


def good_checkpoint(run_dir: str | Path) -> tuple[Path, list[str]]:
    """The newest checkpoint of ``run_dir`` whose files all match their checksums.

    Returns it and one reason per newer checkpoint it skipped (``"ckpt-...: modules.safetensors
    is missing"``); every reader (resume, ``genlab.load``, sample, eval) chooses here.
    RunError when there is none, with every reason.
    """
    checkpoint_dir = resolve(run_dir) / "checkpoints"
    skipped: list[str] = []
    for checkpoint in reversed(list_checkpoints(checkpoint_dir)):
        try:
            verify_checkpoint(checkpoint)
            return checkpoint, skipped
        except RunError as err:
            skipped.append(f"{checkpoint.name}: {err}")
    if not skipped:
        raise RunError(f"no checkpoint in {checkpoint_dir}; train the run first (genlab train CONFIG)")
    raise RunError(
        f"no usable checkpoint in {checkpoint_dir}: {'; '.join(skipped)}. The run cannot continue from "
        "these files; restore the folder from a backup or train again"
    )


def fallback_note(checkpoint: Path, skipped: list[str]) -> str | None:
    """One line saying which checkpoint is used and why newer ones were passed over; None when it is the newest."""
    if not skipped:
        return None
    return f"using {checkpoint.name}, the newest checkpoint that passes its checksums; skipped {'; '.join(skipped)}"


def checkpoint_to_read(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """``checkpoint`` verified (no fallback: it was asked for), else the run's :func:`good_checkpoint`.

    A fallback is reported on stderr, so that reading an older checkpoint is never silent.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        try:
            verify_checkpoint(path)
        except RunError as err:
            raise RunError(f"{path}: {err}; leave out the checkpoint to use the run's newest good one") from None
        return path
    path, skipped = good_checkpoint(run_dir)
    if note := fallback_note(path, skipped):
        print(f"genlab: warning: {note}", file=sys.stderr)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest good checkpoint of ``run_dir`` (a fallback to an older one is reported on stderr)."""
    return checkpoint_to_read(run_dir)


def load_modules(checkpoint: Path, modules: dict[str, nn.Module]) -> None:
    """Load every module's state from ``modules.safetensors``, strictly."""
    tensors = _load_safetensors(checkpoint / MODULES_FILE)
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own, strict=True)
        except RuntimeError as err:
            raise RunError(f"{checkpoint} does not fit module {name!r} of this config: {err}") from None


def read_module(checkpoint: Path, name: str) -> dict[str, Tensor]:
    """The state of module ``name`` alone from ``modules.safetensors`` (only its tensors are read).

    RunError naming the file's modules when it holds none of that name.
    """
    path, prefix = checkpoint / MODULES_FILE, f"{name}."
    try:
        with safe_open(path, framework="pt") as f:
            keys = list(f.keys())
            own = {key[len(prefix) :]: f.get_tensor(key) for key in keys if key.startswith(prefix)}
    except (SafetensorError, OSError) as err:
        raise RunError(
            f"{path} is unreadable ({err}); run genlab info on the run to see its good checkpoints"
        ) from None
    if not own:
        names = sorted({key.split(".", 1)[0] for key in keys})
        raise RunError(f"{path} holds no module {name!r}; it has {', '.join(names)}")
    return own


def read_export(checkpoint: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The exported model's info (model.yaml) and weights of a checkpoint."""
    info_path = checkpoint / EXPORT_INFO
    if not info_path.is_file():
        raise RunError(f"{checkpoint} has no exported model ({EXPORT_INFO}); it was written by an older genlab")
    info = yaml.safe_load(info_path.read_text())
    if info.get("format") != EXPORT_FORMAT:
        raise RunError(f"{info_path} is export format {info.get('format')}; this genlab reads {EXPORT_FORMAT}")
    return info, _load_safetensors(checkpoint / EXPORT_WEIGHTS)


def load_training_state(checkpoint: Path) -> dict[str, Any]:
    """``training_state.pt``, unpickled with ``weights_only=True``: tensors and plain containers only.

    Anything else (a pickle that would import or call code) is refused with a RunError
    that says how to continue from the previous checkpoint; nothing in it runs.
    """
    path = checkpoint / STATE_FILE
    if not path.exists() and (checkpoint / EXPORT_INFO).is_file():
        raise RunError(
            f"{checkpoint} holds an exported model alone (a zoo entry): there is no training to resume; "
            f"train your own from its config.yaml"
        )
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        # torch's message spans lines and suggests allow-listing the global; keep only what was refused
        lines = [ln for ln in str(err).splitlines() if "nsupported" in ln and "file an issue" not in ln]
        reason = lines[0].split(". ")[0].replace("WeightsUnpickler error:", "").strip().rstrip(".") if lines else "?"
        raise RunError(
            f"{path} was refused ({reason}): it holds more than tensors and plain containers, and "
            f"unpickling it could run code. {_restore_hint(checkpoint)}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise RunError(f"{path} is unreadable ({str(err).splitlines()[0]}). {_restore_hint(checkpoint)}") from None


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, as tensors and plain containers."""
    state = np.random.get_state()  # legacy=True: the tuple
    assert isinstance(state, tuple)
    _kind, keys, pos, has_gauss, cached = state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(state["python"])


def _restore_hint(checkpoint: Path) -> str:
    run_dir = checkpoint.parent.parent
    return (
        f"To continue from the previous checkpoint, move {checkpoint.name} out of {checkpoint.parent} "
        f"and run: genlab train --resume {run_dir}"
    )


def _write_failure(err: OSError, final: Path, nbytes: int) -> str:
    """What went wrong writing ``final``, what was kept, and what to free."""
    checkpoint_dir, run_dir = final.parent, final.parent.parent
    kept = [p.name for p in list_checkpoints(checkpoint_dir) if p != final]
    what = "the disk is full" if err.errno in DISK_FULL else (err.strerror or str(err))
    megabytes = max(1, round(nbytes / 2**20))
    return (
        f"could not write checkpoint {final.name} in {checkpoint_dir}: {what}. The half-written folder was removed; "
        f"{f'the previous checkpoint {kept[-1]} is kept' if kept else 'no earlier checkpoint exists'}. "
        f"Free at least {megabytes} MB (one checkpoint's size) on the disk holding {run_dir}, e.g. old runs in "
        f"{run_dir.parent}, then continue with: genlab train --resume {run_dir}"
    )


def _nbytes(obj: Any) -> int:
    """Bytes of every tensor in a nested structure: about what a checkpoint of it takes on disk."""
    if isinstance(obj, Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, in hex."""
    # hashlib (the standard library) rather than a hashing package: SHA-256 is all a checksum
    # needs, it adds no dependency, and its digest equals `sha256sum FILE` for checking by hand.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise RunError(
            f"{path} is unreadable ({err}); run genlab info on the run to see its good checkpoints"
        ) from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
