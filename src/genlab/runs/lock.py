"""One writer per run folder: training holds an OS lock on ``RUN/train.lock`` for its whole life.

``flock`` is tied to the open file, so the kernel releases it when the process ends in any way,
``kill -9`` included: a crash never leaves a stale lock to clear by hand. The file itself stays
(deleting it would let a waiting writer lock an unlinked copy while a third locks a new one); it
holds the holder's process id and host, so a refused writer can name who holds the folder.
Readers (sample, eval, info, the studio) never take the lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genlab.errors import RunError

LOCK_FILE = "train.lock"


class RunLocked(RunError):
    """Another process is training in this run folder."""


@contextmanager
def hold(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the block; RunLocked at once if another process holds it.

    Nothing in the folder changes when the lock is refused.
    """
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise RunError(f"{run_dir} does not exist; pass a run folder under runs/") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 256).decode(errors="replace").split()
        os.close(fd)
        raise RunLocked(_refusal(run_dir, holder)) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _refusal(run_dir: Path, holder: list[str]) -> str:
    if len(holder) < 2:  # the holder has locked but not yet written its name
        return (
            f"{run_dir} is being trained by another process that is just starting; wait for it to finish "
            "or stop it, then run this again"
        )
    pid, host = holder[0], holder[1]
    where = "" if host == socket.gethostname() else f" on {host}"
    return (
        f"{run_dir} is being trained by process {pid}{where} (since {holder[2] if len(holder) > 2 else '?'}); "
        f"wait for it to finish, or stop it with `kill {pid}` (it checkpoints first), "
        f"then `genlab train --resume {run_dir}`"
    )
