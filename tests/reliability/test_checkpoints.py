"""Damaged checkpoints are detected by name and never loaded; every reader falls back to the newest good one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli.main import main
from genlab.errors import RunError
from genlab.runs import checkpoint as ckpt

from .faults import CORRUPTIONS, flip, forge_checksums, plant_pickle_bomb, truncate

pytestmark = pytest.mark.reliability

OLDER, NEWER = "ckpt-000000000064", "ckpt-000000000128"
FILES = (*ckpt.KNOWN, ckpt.CHECKSUMS_FILE)


def newest(run: Path) -> Path:
    return run / "checkpoints" / NEWER


def one_error_line(err: str) -> str:
    """The stderr of a failed command: one 'genlab: error:' line and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("genlab: error: "), err
    return lines[0]


def test_every_file_has_its_sha256_beside_it(pristine_run):
    for checkpoint in ckpt.list_checkpoints(pristine_run / "checkpoints"):
        listed = json.loads((checkpoint / ckpt.CHECKSUMS_FILE).read_text())
        assert listed["algorithm"] == "sha256" and sorted(listed["files"]) == sorted(ckpt.KNOWN)
        for name, digest in listed["files"].items():
            assert hashlib.sha256((checkpoint / name).read_bytes()).hexdigest() == digest, name
        ckpt.verify_checkpoint(checkpoint)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("name", FILES)
def test_each_corruption_is_detected_by_name_and_passed_over(run, name, corruption):
    CORRUPTIONS[corruption](newest(run) / name)
    with pytest.raises(RunError) as err:
        ckpt.verify_checkpoint(newest(run))
    assert name in str(err.value) or name == ckpt.CHECKSUMS_FILE  # a damaged checksums.json may name the file it no longer vouches for
    chosen, skipped = ckpt.good_checkpoint(run)
    assert chosen.name == OLDER and len(skipped) == 1 and skipped[0].startswith(f"{NEWER}: ")


def test_resume_falls_back_says_so_and_ends_bitwise_equal_to_the_uninterrupted_run(run, pristine_run, capsys):
    flip(0.5)(newest(run) / ckpt.MODULES_FILE)
    genlab.train(resume=run)  # retrains 64 -> 128 images from the older checkpoint, rewriting ckpt-...128
    log = (run / "log.txt").read_text()
    assert f"WARNING: using {OLDER}, the newest checkpoint that passes its checksums; skipped {NEWER}: " \
           f"{ckpt.MODULES_FILE} does not match its checksum" in log
    assert f"using {OLDER}" in capsys.readouterr().out  # echoed as the run's messages are
    ckpt.verify_checkpoint(newest(run))
    resumed, straight = (load_file(newest(r) / ckpt.MODULES_FILE) for r in (run, pristine_run))
    assert resumed.keys() == straight.keys() and all(torch.equal(resumed[k], straight[k]) for k in straight)


@pytest.mark.parametrize("reader", ["load", "load_step", "sample", "eval"])
def test_readers_fall_back_and_say_which_checkpoint_and_why(run, reader, tmp_path, capsys):
    damaged = ckpt.MODULES_FILE if reader == "load_step" else ckpt.EXPORT_WEIGHTS
    flip(0.5)(newest(run) / damaged)
    if reader == "load":
        model = genlab.load(run)
        older = load_file(run / "checkpoints" / OLDER / ckpt.EXPORT_WEIGHTS)
        assert all(torch.equal(v, older[k]) for k, v in model.state_dict().items())
    elif reader == "load_step":
        genlab.load_step(run)
    elif reader == "sample":
        assert main(["sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png")]) == 0
    else:
        assert main(["eval", str(run), "--n", "8", "--k", "2"]) == 0
    err = capsys.readouterr().err
    assert f"genlab: warning: using {OLDER}, the newest checkpoint that passes its checksums; skipped {NEWER}: " \
           f"{damaged} does not match its checksum" in err


def test_an_explicit_damaged_checkpoint_is_refused_not_replaced(run):
    truncate(newest(run) / ckpt.EXPORT_WEIGHTS)
    with pytest.raises(RunError, match=f"{NEWER}: {ckpt.EXPORT_WEIGHTS} does not match its checksum"):
        genlab.load(run, checkpoint=newest(run))


def test_no_good_checkpoint_lists_every_reason_in_one_line(run, capsys):
    for checkpoint in ckpt.list_checkpoints(run / "checkpoints"):
        flip(0.5)(checkpoint / ckpt.EXPORT_WEIGHTS)
    assert main(["sample", str(run), "-n", "4"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{NEWER}: {ckpt.EXPORT_WEIGHTS} does not match" in line and f"{OLDER}: {ckpt.EXPORT_WEIGHTS}" in line


@pytest.mark.parametrize("torch_format", [False, True], ids=["raw-pickle", "torch-save"])
def test_pickle_bomb_with_its_checksum_unchanged_is_skipped_and_never_runs(run, tmp_path, torch_format):
    marker = tmp_path / "bomb-went-off"
    plant_pickle_bomb(newest(run) / ckpt.STATE_FILE, marker, torch_format)
    genlab.train(resume=run)
    assert f"skipped {NEWER}: {ckpt.STATE_FILE} does not match its checksum" in (run / "log.txt").read_text()
    assert not marker.exists()


@pytest.mark.parametrize("torch_format", [False, True], ids=["raw-pickle", "torch-save"])
def test_pickle_bomb_with_forged_checksums_is_refused_in_one_line_that_says_how_to_restore(run, tmp_path, capsys,
                                                                                            torch_format):
    marker = tmp_path / "bomb-went-off"
    plant_pickle_bomb(newest(run) / ckpt.STATE_FILE, marker, torch_format)
    forge_checksums(newest(run))
    assert main(["train", "--resume", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(newest(run) / ckpt.STATE_FILE) in line and "was refused" in line and "could run code" in line
    assert f"move {NEWER} out of {run / 'checkpoints'} and run: genlab train --resume {run}" in line
    assert not marker.exists()
    # Following the message continues from the previous checkpoint.
    shutil.move(newest(run), tmp_path / NEWER)
    assert main(["train", "--resume", str(run)]) == 0
    assert not marker.exists()
    ckpt.verify_checkpoint(newest(run))


@pytest.mark.parametrize("name", [ckpt.MODULES_FILE, ckpt.EXPORT_WEIGHTS])
def test_truncated_safetensors_behind_forged_checksums_is_a_clear_error(run, name):
    truncate(newest(run) / name)
    forge_checksums(newest(run))
    with pytest.raises(RunError, match=f"{name} is unreadable"):
        genlab.load_step(run) if name == ckpt.MODULES_FILE else genlab.load(run)


def test_info_names_the_damaged_checkpoint_and_the_newest_good_one(run, capsys):
    CORRUPTIONS["missing"](newest(run) / ckpt.STATE_FILE)
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"newest good: {OLDER}\n  damaged: {NEWER}: {ckpt.STATE_FILE} is missing" in out
