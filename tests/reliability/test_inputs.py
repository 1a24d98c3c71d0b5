"""Bad config values and CLI arguments: one line naming the key, the value and what is allowed; no run folder."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

import genlab
from genlab.cli.main import main
from genlab.config import ScheduleConfig, TrainConfig, bounds_of
from genlab.errors import ConfigError, DataError, TrainingDiverged
from genlab.registry import DATASETS, MODELS, OBJECTIVES
from genlab.training.objectives.vae import VAEStep
from genlab.training.step import LossOutput

from .conftest import tiny_config

pytestmark = pytest.mark.reliability

DATA = "data: {name: sprites, image_size: 28, n_train: 256, n_test: 64}\n"
VAE = DATA + "model: {name: conv_vae, latent_dim: 4, channels: 8}\nobjective: {name: vae}\n"
GAN = DATA + "model: {name: dcgan, latent_dim: 8, g_channels: 8, d_channels: 8}\nobjective: {name: gan}\n"

# (recipe, override, what the one error line must say)
BAD_VALUES = [
    (VAE, "objective.lr=-1", "objective.lr must be > 0, got -1.0"),
    (VAE, "objective.lr=0", "objective.lr must be > 0, got 0.0"),
    (VAE, "objective.lr=.nan", "objective.lr must be > 0, got nan"),
    (VAE, "objective.betas=[0.9,1.0]", "objective.betas must each be in [0, 1), got (0.9, 1.0)"),
    (VAE, "objective.beta=-1", "objective.beta must be >= 0, got -1.0"),
    (VAE, "model.latent_dim=0", "model.latent_dim must be >= 1, got 0"),
    (VAE, "model.channels=-3", "model.channels must be >= 1, got -3"),
    (VAE, "train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    (VAE, "train.batch_size=1.5", "train.batch_size must be int, got 1.5"),
    (VAE, "train.kimg=-5", "train.kimg must be > 0, got -5.0"),
    (VAE, "train.kimg=0", "train.kimg must be > 0, got 0.0"),
    (VAE, "train.kimg=.inf", "train.kimg must be > 0, got inf"),
    (VAE, "train.log_every_kimg=-1", "train.log_every_kimg must be >= 0 (0 disables), got -1.0"),
    (VAE, "train.snapshot_every_kimg=-1", "train.snapshot_every_kimg must be >= 0 (0 disables), got -1.0"),
    (VAE, "train.checkpoint_every_kimg=-0.5", "train.checkpoint_every_kimg must be >= 0"),
    (VAE, "train.keep_checkpoints=0", "train.keep_checkpoints must be >= 1, got 0"),
    (VAE, "train.grad_clip=-1", "train.grad_clip must be >= 0 (0 disables), got -1.0"),
    (VAE, "train.threads=-1", "train.threads must be >= 0"),
    (VAE, "train.seed=-1", "train.seed must be in [0, 4294967295], got -1"),
    (VAE, "train.precision=fp16", "train.precision must be one of ['fp32', 'bf16', 'auto'], got 'fp16'"),
    (VAE, "train.device=gpu", "device must be auto, cpu, mps, cuda or cuda:N, got 'gpu'"),
    (VAE, "train.lr_schedule.final_fraction=2", "train.lr_schedule.final_fraction must be in [0, 1], got 2.0"),
    (VAE, "train.lr_schedules={vae: {warmup_kimg: -1}}", "train.lr_schedules.vae.warmup_kimg must be >= 0, got -1.0"),
    (VAE, "data.image_size=4", "data.image_size must be >= 8, got 4"),
    (VAE, "data.n_train=0", "data.n_train must be >= 1, got 0"),
    (VAE, "data.shapes=9", "data.shapes must be in [1, 4] (square, ellipse, heart, triangle), got 9"),
    (GAN, "objective.n_critic=0", "objective.n_critic must be >= 1 (D steps per G step), got 0"),
    (GAN, "objective.lr_d=-1", "objective.lr_d must be > 0, got -1.0"),
    (GAN, "objective.ema_decay=1", "objective.ema_decay must be in [0, 1) (0 turns the EMA off), got 1.0"),
    (GAN, "model.latent_dim=0", "model.latent_dim must be >= 1, got 0"),
    (GAN, "model.d_channels=0", "model.d_channels must be >= 1, got 0"),
]


def recipe(tmp_path: Path, sections: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"name: bad\n{sections}train: {{kimg: 0.064, batch_size: 32, out_dir: {tmp_path / 'runs'}, "
                    "progress_bar: false, tensorboard: false, threads: 1}\n")
    return path


def cli(args: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``genlab ARGS`` (argparse's own errors exit through SystemExit)."""
    try:
        code = main(args)
    except SystemExit as exit:
        code = exit.code
    return code, capsys.readouterr().err


def no_run_folder(tmp_path: Path) -> bool:
    runs = tmp_path / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "train"])
@pytest.mark.parametrize("sections, override, says", BAD_VALUES, ids=[case[1] for case in BAD_VALUES])
def test_out_of_range_values_are_one_line_errors(tmp_path, capsys, sections, override, says, dry_run):
    code, err = cli(["train", str(recipe(tmp_path, sections)), "--set", override] + ["--dry-run"] * dry_run, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("genlab: error: ") and says in lines[0], lines[0]
    assert no_run_folder(tmp_path)


def test_a_model_that_cannot_take_the_data_fails_before_any_run_folder(tmp_path, capsys):
    code, err = cli(["train", str(recipe(tmp_path, GAN)), "--set", "data.image_size=48"], capsys)
    assert code == 2 and "Traceback" not in err and "dcgan needs square 'image' images of [28, 32, 64] pixels" in err
    assert no_run_folder(tmp_path)


def test_python_built_configs_are_checked_too(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(ConfigError, match="TrainConfig: batch_size must be >= 1, got 0"):
        dataclasses.replace(config.train, batch_size=0)
    config.train.kimg = -5  # mutated after construction: caught when training starts
    with pytest.raises(ConfigError, match=r"train\.kimg must be > 0, got -5.0"):
        genlab.train(config)
    assert no_run_folder(tmp_path)


BAD_ARGS = [
    ["sample", "{run}", "-n", "0"],
    ["sample", "{run}", "-n", "-5"],
    ["sample", "{run}", "-n", "many"],
    ["sample", "{run}", "--seed", "x"],
    ["sample", "{run}", "--seed", "1.5"],
    ["sample", "{run}", "--class", "3"],
    ["sample", "{run}", "--class", "x"],
    ["sample", "{run}", "--truncation", "0"],
    ["sample", "{run}", "--truncation", "-1"],
    ["sample", "{run}", "--device", "bogus"],
    ["sample", "{run}", "-o", "grid.jpgx"],
    ["sample", "{tmp}/no-such-run"],
    ["eval", "{run}", "--n", "1"],
    ["eval", "{run}", "--k", "0", "--n", "8"],
    ["eval", "{run}", "--metrics", "fidd"],
    ["eval", "{run}", "--device", "bogus"],
    ["info", "{tmp}/no-such-run"],
    ["train", "--resume", "{run}", "--stop-after-kimg", "0"],
    ["train", "--resume", "{run}", "--stop-after-kimg", "-1"],
    ["train", "--resume", "{tmp}/no-such-run"],
    ["train", "--resume", "{run}", "--set", "train.batch_size=0"],
    ["train"],
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=[" ".join(a).replace("{run} ", "") for a in BAD_ARGS])
def test_bad_cli_arguments_are_one_line_errors(run, tmp_path, capsys, args):
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    code, err = cli([a.format(run=run, tmp=tmp_path) for a in args], capsys)
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]  # argparse prints its usage first
    assert last.startswith("genlab") and "error: " in last, err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written


def _fail_at(monkeypatch, iteration: int, make_error) -> None:
    real_loss, calls = VAEStep.loss, {"n": 0}

    def loss(self, batch):
        calls["n"] += 1
        if calls["n"] > iteration:
            return make_error(real_loss(self, batch))
        return real_loss(self, batch)

    monkeypatch.setattr(VAEStep, "loss", loss)


def _raise(error):
    def make(out):
        raise error
    return make


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["bug", "second-ctrl-c"])
def test_a_start_that_fails_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, monkeypatch, error):
    _fail_at(monkeypatch, 0, _raise(error))
    with pytest.raises(type(error)):
        genlab.train(tiny_config(tmp_path / "runs"))
    assert no_run_folder(tmp_path)


def test_divergence_before_the_first_checkpoint_says_the_folder_was_removed(tmp_path, monkeypatch):
    _fail_at(monkeypatch, 0, lambda out: LossOutput(out.loss * float("nan"), out.stats))
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet.*so the new run folder .* was removed"):
        genlab.train(tiny_config(tmp_path / "runs"))
    assert no_run_folder(tmp_path)


def test_a_failure_after_the_first_checkpoint_keeps_the_run(tmp_path, monkeypatch):
    _fail_at(monkeypatch, 2, _raise(RuntimeError("boom")))  # after ckpt-...64
    with pytest.raises(RuntimeError):
        genlab.train(tiny_config(tmp_path / "runs"))
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "checkpoints" / "ckpt-000000000064").is_dir()


def test_unreadable_data_fails_before_any_run_folder(tmp_path):
    config = tiny_config(tmp_path / "runs")
    config = dataclasses.replace(config, data=DATASETS.get("tensors").config_cls(path=str(tmp_path / "none.safetensors")))
    with pytest.raises(DataError, match="none.safetensors is not a readable safetensors file"):
        genlab.train(config)
    assert no_run_folder(tmp_path)


def _numeric(tp) -> bool:
    if tp in (int, float):
        return True
    return any(_numeric(arg) for arg in typing.get_args(tp) if arg is not Ellipsis)


CONFIG_CLASSES = sorted({TrainConfig, ScheduleConfig} | {r.get(n).config_cls for r in (MODELS, DATASETS, OBJECTIVES)
                                                         for n in r.names()}, key=lambda c: c.__qualname__)


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__qualname__)
def test_every_numeric_key_declares_its_range_and_its_default_is_in_it(cls):
    hints, bounds = typing.get_type_hints(cls), bounds_of(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(bounds) <= set(fields), f"{cls.__qualname__}.bounds names no field {set(bounds) - set(fields)}"
    undeclared = [name for name in fields if _numeric(hints[name]) and name not in bounds]
    assert not undeclared, f"add {undeclared} to {cls.__qualname__}.bounds (see genlab.config.Range)"
    for name, allowed in bounds.items():
        default = fields[name].default
        if default is not dataclasses.MISSING:
            assert allowed.allows(default), f"{cls.__qualname__}.{name} default {default!r} is outside {allowed}"
