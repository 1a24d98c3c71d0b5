"""Ways a checkpoint file gets damaged, each a function of the file's path."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch

from genlab.runs import checkpoint as ckpt


def flip(fraction: float):
    """Invert the bits of the byte at ``fraction`` of the file's length (a bad sector, a cosmic ray)."""
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        at = min(len(data) - 1, int(fraction * len(data)))
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
    return damage


def truncate(path: Path) -> None:
    """Keep the first half (a copy or a write cut short)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def remove(path: Path) -> None:
    path.unlink()


CORRUPTIONS = {"flip-first-byte": flip(0.0), "flip-middle-byte": flip(0.5), "flip-last-byte": flip(1.0),
               "truncated": truncate, "empty": empty, "missing": remove}


class Bomb:
    """Unpickling this creates ``marker``: proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant_pickle_bomb(path: Path, marker: Path, torch_format: bool) -> None:
    """Replace ``path`` by a pickle that would create ``marker``: raw pickle, or wrapped as torch.save writes it."""
    payload = {"version": 2, "optimizers": Bomb(marker)}
    if torch_format:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))


def forge_checksums(checkpoint: Path) -> None:
    """Rewrite checksums.json to match the files as they now are (someone who can write the folder)."""
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in checkpoint.iterdir() if p.name in ckpt.KNOWN}
    (checkpoint / ckpt.CHECKSUMS_FILE).write_text(json.dumps({"algorithm": "sha256", "files": files}))
