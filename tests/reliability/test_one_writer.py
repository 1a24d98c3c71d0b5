"""One writer per run folder: a second training process is refused in one line and writes nothing;
the lock dies with its holder, ``kill -9`` included."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab.cli.main import main
from genlab.runs import lock as run_lock

pytestmark = pytest.mark.reliability

HOLD = "import sys, time; from pathlib import Path; from genlab.runs import lock as run_lock\n" \
       "with run_lock.hold(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)"


def folder_state(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_second_writer_is_refused_in_one_line_and_a_killed_holder_frees_the_folder(run, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = folder_state(run)
        assert main(["train", "--resume", str(run), "--set", "train.kimg=0.192"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"process {holder.pid}" in err and f"kill {holder.pid}" in err, err
        assert folder_state(run) == before, "a refused writer changed the run folder"
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    assert main(["train", "--resume", str(run), "--set", "train.kimg=0.192"]) == 0  # at once, nothing to clear


@pytest.mark.slow
def test_a_resume_while_the_run_trains_is_refused(run, capsys):
    """The bug this lock fixes: two resumes of one run both trained, writing the same rows of stats.jsonl twice."""
    first = subprocess.Popen([sys.executable, "-m", "genlab", "train", "--resume", str(run), "--set", "train.kimg=1000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        lock, log = run / run_lock.LOCK_FILE, run / "log.txt"
        resumes = log.read_text().count("resuming")
        while not (lock.is_file() and lock.read_text().startswith(f"{first.pid} ")) and time.time() < deadline:
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.05)
        assert main(["train", "--resume", str(run), "--set", "train.kimg=1000"]) == 2
        assert f"is being trained by process {first.pid}" in capsys.readouterr().err
        while log.read_text().count("resuming") == resumes and time.time() < deadline:
            time.sleep(0.05)  # the lock is taken before the data and the model are built; SIGTERM checkpoints once it trains
    finally:
        first.send_signal(signal.SIGTERM)  # stops with a checkpoint, as Ctrl-C does
        _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    rows = [json.loads(line)["kimg"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == len(set(rows)), f"rows written twice: {rows}"


def test_a_new_run_is_locked_from_the_moment_its_folder_exists(tmp_path):
    run = tmp_path / "00000-x"
    run.mkdir()
    with run_lock.hold(run):
        with pytest.raises(run_lock.RunLocked, match="wait for it to finish"):
            with run_lock.hold(run):
                pass
    with run_lock.hold(run):  # released on leaving the block
        pass


def test_the_lock_is_released_when_training_fails(run):
    """A resume that stops on an error after taking the lock (no checkpoint left) leaves no lock behind."""
    shutil.rmtree(run / "checkpoints")
    assert main(["train", "--resume", str(run)]) == 2
    with run_lock.hold(run):
        pass
