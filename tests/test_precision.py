"""train.precision=auto: the probe picks the measured-faster precision, leaves no trace on the
run, and a resumed run keeps its choice."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.config import config_from_dict
from genlab.errors import TrainingDiverged
from genlab.runs import checkpoint as ckpt
from genlab.training import precision as precision_probe


def tiny_config(family: str, out_dir: Path, precision: str) -> genlab.Config:
    model, objective = {
        "vae": ({"name": "conv_vae", "latent_dim": 4, "channels": 8}, {"name": "vae"}),
        # EMA and R1 give the step state of its own and a second backward pass to undo.
        "gan": ({"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8, "d_norm": "none"},
                {"name": "gan", "ema_decay": 0.9, "regularisers": [{"name": "r1"}]}),
    }[family]
    return config_from_dict({
        "name": "tiny", "data": {"name": "sprites", "image_size": 28, "n_train": 256, "n_test": 64},
        "model": model, "objective": objective,
        "train": {"kimg": 0.256, "batch_size": 32, "out_dir": str(out_dir), "precision": precision, "log_every_kimg": 0.128,
                  "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0.128, "progress_bar": False, "tensorboard": False},
    })


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt.latest_checkpoint(run_dir) / ckpt.MODULES_FILE)


@pytest.mark.parametrize("family", ["vae", "gan"])
@pytest.mark.parametrize("chosen", ["fp32", "bf16"])
def test_auto_trains_exactly_as_the_precision_it_chose(family, chosen, tmp_path, monkeypatch):
    """The probe's timed iterations are undone: weights, optimiser, step state, data order, RNGs."""
    monkeypatch.setattr(precision_probe, "choose", lambda seconds: chosen)
    auto = genlab.train(tiny_config(family, tmp_path / "auto", "auto"))
    fixed = genlab.train(tiny_config(family, tmp_path / "fixed", chosen))
    a, b = final_weights(auto), final_weights(fixed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = (auto / "log.txt").read_text()
    assert "train.precision=auto: fp32 " in log and f"training in {chosen}" in log


def test_a_resumed_auto_run_keeps_its_choice_without_probing_again(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_probe, "choose", lambda seconds: "bf16")
    stopped = genlab.train(tiny_config("vae", tmp_path, "auto"), stop_after_kimg=0.128)
    assert ckpt.load_training_state(ckpt.latest_checkpoint(stopped))["precision"] == "bf16"

    def no_probe(*args, **kwargs):
        raise AssertionError("a resumed run must reuse its recorded precision")

    monkeypatch.setattr(precision_probe, "time_precisions", no_probe)
    genlab.train(resume=stopped)
    assert ckpt.load_training_state(ckpt.latest_checkpoint(stopped))["precision"] == "bf16"


def test_bf16_is_chosen_only_when_clearly_faster():
    assert precision_probe.choose({"fp32": 10.0, "bf16": 6.0}) == "bf16"
    assert precision_probe.choose({"fp32": 10.0, "bf16": 9.5}) == "fp32"  # within the margin: not worth the precision
    assert precision_probe.choose({"fp32": 10.0, "bf16": 14.0}) == "fp32"
    assert precision_probe.choose({"fp32": 10.0, "bf16": math.inf}) == "fp32"  # diverged in bf16


def test_timing_alternates_and_survives_a_diverging_bf16():
    calls = []

    def iterate(precision):
        calls.append(precision)
        if precision == "bf16" and len(calls) > 2:
            raise TrainingDiverged("bf16 loss became nan")

    seconds = precision_probe.time_precisions(iterate)
    assert seconds["bf16"] == math.inf and math.isfinite(seconds["fp32"])
    assert calls[:2] == ["fp32", "bf16"]


def test_a_device_without_native_bf16_is_timed_in_fp32_only(tmp_path, monkeypatch):
    """On such a device bf16 runs on slow fallbacks: the probe does not spend the run's time learning that."""
    monkeypatch.setattr(precision_probe, "native_bf16", lambda device: False)
    timed = []
    real_time_precisions = precision_probe.time_precisions

    def recording(iterate, agree, precisions):
        return real_time_precisions(lambda p: (timed.append(p), iterate(p))[1], agree, precisions)

    monkeypatch.setattr(precision_probe, "time_precisions", recording)
    run = genlab.train(tiny_config("vae", tmp_path, "auto"))
    assert timed and set(timed) == {"fp32"}
    log = (run / "log.txt").read_text()
    assert "bf16 not timed: no native bf16 kernels on this device; training in fp32" in log
    assert ckpt.load_training_state(ckpt.latest_checkpoint(run))["precision"] == "fp32"


def test_asking_for_bf16_without_native_kernels_warns_and_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_probe, "native_bf16", lambda device: False)
    run = genlab.train(tiny_config("vae", tmp_path, "bf16"))
    assert "WARNING: train.precision=bf16 on cpu, which has no native bf16 kernels" in (run / "log.txt").read_text()
    assert "set train.precision=fp32 or auto" in (run / "log.txt").read_text()


def test_only_the_given_precisions_are_timed():
    calls = []
    seconds = precision_probe.time_precisions(calls.append, precisions=("fp32",))
    assert set(calls) == {"fp32"} and seconds.keys() == {"fp32"}
    assert precision_probe.choose(seconds) == "fp32"
