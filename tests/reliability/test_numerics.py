"""NaN/Inf in a batch, a loss or a gradient: the run stops naming the iteration, the phase and which
it was, with its weights finite; or, with train.on_nan=rollback, reloads the last good checkpoint
with the learning rates halved."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.cli.main import main
from genlab.data.base import Batch, TensorDataset
from genlab.errors import TrainingDiverged
from genlab.runs import checkpoint as ckpt
from genlab.training.objectives.gan import GANStep
from genlab.training.objectives.vae import VAEStep

from .conftest import GAN, tiny_config

pytestmark = pytest.mark.reliability

LR = 1e-3  # the vae objective's default learning rate


def poison_batches(monkeypatch, value: float, from_call: int) -> None:
    """Batches from the ``from_call``-th on (0-based) carry ``value`` in one pixel of their image field."""
    real, calls = TensorDataset.batch, {"n": 0}

    def batch(self, index, device="cpu") -> Batch:
        out = real(self, index, device)
        calls["n"] += 1
        if calls["n"] > from_call and "image" in out:
            image = out["image"].clone()
            image[0, 0, 0, 0] = value
            out = Batch({**out, "image": image})
        return out

    monkeypatch.setattr(TensorDataset, "batch", batch)


def poison_gradients(monkeypatch, cls, loss: str, calls_ok: int, until: int | None = None) -> None:
    """``cls.loss``'s gradient becomes NaN on its calls after ``calls_ok`` (up to ``until``); the loss stays finite."""
    real, calls = getattr(cls, loss), {"n": 0}

    def poisoned(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] > calls_ok and (until is None or calls["n"] <= until):
            out.loss.register_hook(lambda grad: grad * float("nan"))
        return out

    monkeypatch.setattr(cls, loss, poisoned)


def weights_are_finite(run) -> bool:
    weights = load_file(ckpt.good_checkpoint(run)[0] / ckpt.MODULES_FILE)
    return all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nan_in_a_batch_stops_and_names_the_iteration_the_loss_and_the_field(tmp_path, monkeypatch, value):
    # 32 images per iteration: the fixed snapshot batch is drawn first, so the 4th draw is iteration 2's batch
    poison_batches(monkeypatch, value, from_call=3)
    with pytest.raises(TrainingDiverged) as err:
        genlab.train(tiny_config(tmp_path))
    message = str(err.value)
    assert message.startswith("vae loss became nan at iteration 2 (0.1 kimg); the batch's 'image' already held "
                              "NaN/Inf (check the data); the last good checkpoint in ")
    (run,) = tmp_path.iterdir()
    assert f"ERROR: {message}" in (run / "log.txt").read_text()
    assert ckpt.good_checkpoint(run)[0].name == "ckpt-000000000064" and weights_are_finite(run)


def test_nan_in_a_gradient_stops_naming_the_phase_and_the_parameter(tmp_path, monkeypatch):
    poison_gradients(monkeypatch, GANStep, "g_loss", calls_ok=2)  # G's 3rd update: iteration 2
    with pytest.raises(TrainingDiverged) as err:
        genlab.train(tiny_config(tmp_path, GAN))
    message = str(err.value)
    assert message.startswith("G gradient norm became nan at iteration 2 (0.1 kimg) while its loss was finite (")
    assert "; first in G." in message and "the batch" not in message and "the last good checkpoint" in message
    (run,) = tmp_path.iterdir()
    assert weights_are_finite(run)  # the step was never taken


def test_a_diverged_run_through_the_cli_is_one_error_line(tmp_path, monkeypatch, capsys):
    poison_gradients(monkeypatch, VAEStep, "loss", calls_ok=0)
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: nan\ndata: {name: sprites, image_size: 28, n_train: 256, n_test: 64}\n"
        "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n"
        f"train: {{kimg: 0.128, batch_size: 32, out_dir: {tmp_path / 'runs'}, progress_bar: false, tensorboard: false, "
        "threads: 1}\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("genlab: error: vae gradient norm became nan at iteration 0 (0.0 kimg)")
    assert "so the new run folder" in err and not any((tmp_path / "runs").iterdir())


def initial_lrs(run) -> list[float]:
    state = ckpt.load_training_state(ckpt.good_checkpoint(run)[0])
    return [g["initial_lr"] for g in state["optimizers"]["vae"]["param_groups"]]


def test_rollback_reloads_the_last_good_checkpoint_with_halved_learning_rates(tmp_path, monkeypatch, capsys):
    poison_gradients(monkeypatch, VAEStep, "loss", calls_ok=2, until=3)  # iteration 2 only, once
    run = genlab.train(tiny_config(tmp_path, on_nan="rollback", kimg=0.192))
    log = (run / "log.txt").read_text()
    assert "WARNING: vae gradient norm became nan at iteration 2 (0.1 kimg)" in log
    assert "rolled back to ckpt-000000000064 with the learning rates halved (rollback 1 of train.max_rollbacks=3)" in log
    assert "finished 0.2 kimg" in log and "rolled back" in capsys.readouterr().out
    assert initial_lrs(run) == [LR / 2] and weights_are_finite(run)
    assert ckpt.load_training_state(ckpt.good_checkpoint(run)[0])["rollbacks"] == 1


def test_rollback_gives_up_after_max_rollbacks(tmp_path, monkeypatch):
    poison_gradients(monkeypatch, VAEStep, "loss", calls_ok=2)  # every update from iteration 2 on
    with pytest.raises(TrainingDiverged, match="It diverged again after 2 rollbacks with halved learning rates"):
        genlab.train(tiny_config(tmp_path, on_nan="rollback", max_rollbacks=2))
    (run,) = tmp_path.iterdir()
    log = (run / "log.txt").read_text()
    assert log.count("rolled back to ckpt-000000000064") == 2 and "(rollback 2 of train.max_rollbacks=2)" in log
    assert weights_are_finite(run)
