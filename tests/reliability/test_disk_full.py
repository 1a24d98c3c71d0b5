"""A full disk while a checkpoint is written: the previous checkpoint stays valid, nothing half-written stays behind."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli.main import main
from genlab.errors import RunError
from genlab.runs import checkpoint as ckpt

from .conftest import tiny_config

pytestmark = pytest.mark.reliability

SECOND = "ckpt-000000000128"


def disk_full_at(monkeypatch, where: str, checkpoint: str = SECOND) -> None:
    """Make one write of ``checkpoint`` fail with ENOSPC: the weights, the training state, the export or the rename."""
    def failing(original, path_arg: int):
        def write(*args, **kwargs):
            if checkpoint in str(args[path_arg]) and (where != "export" or str(args[path_arg]).endswith(ckpt.EXPORT_WEIGHTS)):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[path_arg]))
            return original(*args, **kwargs)
        return write

    if where in ("modules", "export"):
        monkeypatch.setattr(ckpt, "save_file", failing(ckpt.save_file, 1))
    elif where == "state":
        monkeypatch.setattr(ckpt.torch, "save", failing(torch.save, 1))
    else:
        monkeypatch.setattr(ckpt.os, "replace", failing(os.replace, 0))


@pytest.mark.parametrize("where", ["modules", "state", "export", "rename"])
def test_full_disk_keeps_the_previous_checkpoint_and_says_what_to_free(tmp_path, monkeypatch, where):
    disk_full_at(monkeypatch, where)
    with pytest.raises(RunError) as err:
        genlab.train(tiny_config(tmp_path))
    run = next(tmp_path.iterdir())
    message = str(err.value)
    assert f"could not write checkpoint {SECOND} in {run / 'checkpoints'}: the disk is full" in message
    assert "the previous checkpoint ckpt-000000000064 is kept" in message
    assert f"MB (one checkpoint's size) on the disk holding {run}" in message
    assert f"continue with: genlab train --resume {run}" in message and "\n" not in message
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt-000000000064"]  # no .tmp-* folder left
    ckpt.verify_checkpoint(run / "checkpoints" / "ckpt-000000000064")
    assert f"ERROR: could not write checkpoint {SECOND}" in (run / "log.txt").read_text()
    # Space freed: the run continues and ends as if nothing had happened.
    monkeypatch.undo()
    genlab.train(resume=run)
    assert ckpt.good_checkpoint(run) == (run / "checkpoints" / SECOND, [])


def test_resumed_after_a_full_disk_equals_the_uninterrupted_run(tmp_path, monkeypatch, pristine_run):
    disk_full_at(monkeypatch, "state")
    with pytest.raises(RunError):
        genlab.train(tiny_config(tmp_path))
    monkeypatch.undo()
    run = genlab.train(resume=next(tmp_path.iterdir()))
    a, b = (load_file(r / "checkpoints" / SECOND / ckpt.MODULES_FILE) for r in (run, pristine_run))
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_full_disk_at_the_first_checkpoint_removes_the_new_run_folder(tmp_path, monkeypatch):
    disk_full_at(monkeypatch, "modules", checkpoint="ckpt-000000000064")
    with pytest.raises(RunError, match="no earlier checkpoint exists.*so the new run folder .* was removed"):
        genlab.train(tiny_config(tmp_path / "runs"))
    assert list((tmp_path / "runs").iterdir()) == []


def test_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: full\ndata: {name: sprites, image_size: 28, n_train: 256, n_test: 64}\n"
        "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n"
        f"train: {{kimg: 0.128, batch_size: 32, out_dir: {tmp_path / 'runs'}, checkpoint_every_kimg: 0.064, "
        "snapshot_every_kimg: 0, progress_bar: false, tensorboard: false, threads: 1}\n"
    )
    disk_full_at(monkeypatch, "modules")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("genlab: error: could not write checkpoint")
