"""The seam between the loop and the families: exact resume for every objective, phases
that train only their modules, learning-rate schedules, step state and the export.

The resume runs come from the registry: each objective's config lists its own small runs
(``resume_examples``, collected by ``genlab.training.objectives.resume_examples``), so a new
objective is checked without editing this file, and one without a run fails here.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab.config import EXAMPLE_FILES, ExampleRun, ObjectiveConfig, ScheduleConfig, config_from_dict
from genlab.models.protocols import is_conditional
from genlab.registry import MODELS, OBJECTIVES, Entry
from genlab.runs import checkpoint as ckpt
from genlab.training.loop import _training_only
from genlab.training.objectives import resume_examples
from genlab.training.objectives.contrastive import ContrastiveObjectiveConfig
from genlab.training.objectives.gan import GANObjectiveConfig
from genlab.training.schedules import lr_factor

TRAIN = {"batch_size": 32, "log_every_kimg": 0.064, "snapshot_every_kimg": 0.256, "checkpoint_every_kimg": 0.256,
         "progress_bar": False, "tensorboard": False}

RUNS: list[ExampleRun] = [run for runs in resume_examples().values() for run in runs]
EXAMPLES: dict[str, ExampleRun] = {run.name: run for run in RUNS}


def case_config(case: str, out_dir, example_files, **train) -> genlab.Config:
    """The resume example named ``case`` as a run of 512 images into ``out_dir``, its data files filled in."""
    run = EXAMPLES[case]
    return config_from_dict({"name": case, "data": example_files(run.data), "model": run.model,
                             "objective": run.objective,
                             "train": {**TRAIN, "kimg": 0.512, "out_dir": str(out_dir), **train}})


def final(run_dir) -> tuple[dict, dict, dict]:
    latest = ckpt.latest_checkpoint(run_dir)
    return load_file(latest / ckpt.MODULES_FILE), load_file(latest / ckpt.EXPORT_WEIGHTS), ckpt.load_training_state(latest)


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), where


def objectives_without_examples(registry=OBJECTIVES) -> list[str]:
    return [name for name, runs in resume_examples(registry).items() if not runs]


def test_every_objective_supplies_a_resume_example():
    missing = objectives_without_examples()
    assert not missing, (f"objective(s) {missing} have no resume example: give the config class "
                         "resume_examples = (ExampleRun(...),), a small run of it (see genlab.config.ExampleRun)")


def test_resume_examples_have_unique_names_and_run_the_objective_that_lists_them():
    assert len(EXAMPLES) == len(RUNS), f"resume examples share names: {sorted(r.name for r in RUNS)}"
    for entry in OBJECTIVES.entries():
        for run in vars(entry.config_cls).get("resume_examples", ()):
            assert run.objective.get("name") == entry.name, f"{entry.name}: example {run.name} runs {run.objective}"


@dataclasses.dataclass
class _NoExampleConfig(ObjectiveConfig):
    name: str = "no_example"


@dataclasses.dataclass
class _GANVariantConfig(GANObjectiveConfig):  # inherits the examples of "gan", which run "gan", not it
    name: str = "gan_variant"


class _Table:
    """The real objectives and the given extra entries, as a registry's ``entries()`` lists them."""

    def __init__(self, *extra: Entry) -> None:
        self.extra = extra

    def entries(self) -> list[Entry]:
        return [*OBJECTIVES.entries(), *self.extra]


def test_an_objective_without_a_resume_example_is_reported_by_name(monkeypatch):
    def build(*args):
        raise AssertionError("never built")

    table = _Table(Entry("no_example", _NoExampleConfig, build), Entry("gan_variant", _GANVariantConfig, build))
    assert objectives_without_examples(table) == ["gan_variant", "no_example"]
    assert resume_examples(table)["gan"] == GANObjectiveConfig.resume_examples
    monkeypatch.setattr(ContrastiveObjectiveConfig, "resume_examples", ())  # as if its example were deleted
    assert objectives_without_examples() == ["contrastive"]


def test_example_files_are_filled_in_where_the_data_reads_them(example_files, mnist_root):
    data = {"name": "unpaired", "a": {"name": "mnist", "root": EXAMPLE_FILES, "limit": 512}, "b": {"name": "sprites"}}
    assert example_files(data) == {**data, "a": {"name": "mnist", "root": str(mnist_root), "limit": 512}}
    assert data["a"]["root"] == EXAMPLE_FILES  # a copy: the example itself is left as it is


@pytest.mark.parametrize("case", [pytest.param(r.name, marks=pytest.mark.slow) if r.slow else r.name for r in RUNS])
def test_every_objective_resumes_bitwise_exactly(case, tmp_path, example_files):
    straight = genlab.train(case_config(case, tmp_path / "a", example_files))
    # Stop off the checkpoint cadence and mid-epoch (at 320 or 384 of 512 images), then resume from the folder alone.
    stopped = genlab.train(case_config(case, tmp_path / "b", example_files), stop_after_kimg=0.3)
    assert genlab.train(resume=stopped) == stopped
    (modules_a, export_a, state_a), (modules_b, export_b, state_b) = final(straight), final(stopped)
    assert state_a["images_seen"] == state_b["images_seen"] == 512
    assert_same(modules_a, modules_b, "modules")
    assert_same(export_a, export_b, "export")
    assert_same(state_a["optimizers"], state_b["optimizers"], "optimizers")
    assert_same(state_a["step"], state_b["step"], "step state")  # EMA counters, health history


def test_load_builds_only_the_exported_model(tmp_path, example_files):
    run_dir = genlab.train(case_config("cgan", tmp_path, example_files, kimg=0.128))
    built = []
    entry = MODELS.get("gan_mlp")
    real_builder = entry.builder

    def watched(cfg, spec):
        return {role: (lambda role=role, make=make: built.append(role) or make()) for role, make in real_builder(cfg, spec).items()}

    object.__setattr__(entry, "builder", watched)
    try:
        G = genlab.load(run_dir)
    finally:
        object.__setattr__(entry, "builder", real_builder)
    assert built == ["G"] and not G.training and is_conditional(G)
    step = genlab.load_step(run_dir)
    assert_same(G.state_dict(), step.modules["G_ema"].state_dict(), "export = EMA weights")
    info, _ = ckpt.read_export(ckpt.latest_checkpoint(run_dir))
    assert info["role"] == "G" and info["data"]["spec"]["label"]["kind"] == "classes"
    digits = G.sample(10, generator=torch.Generator().manual_seed(0), labels=torch.arange(10))
    assert digits.shape == (10, 1, 28, 28)


def test_a_phase_restores_requires_grad_even_when_its_loss_raises(tmp_path, example_files):
    step = genlab.load_step(genlab.train(case_config("gan_k2_ema", tmp_path, example_files, kimg=0.064)))
    g_phase = step.phases()[1]
    with pytest.raises(RuntimeError, match="boom"):
        with _training_only(step, g_phase, wrapped={}):
            assert not any(p.requires_grad for p in step.modules["D"].parameters())
            raise RuntimeError("boom")
    assert all(p.requires_grad for p in step.modules["D"].parameters())
    assert not any(p.requires_grad for p in step.modules["G_ema"].parameters())  # frozen stays frozen
    assert step.nets is step.modules


def test_schedules_are_pure_functions_of_progress():
    total = 100_000
    assert lr_factor(ScheduleConfig(), 50_000, total) == 1.0
    linear = ScheduleConfig(kind="linear", decay_start_kimg=50)  # CycleGAN: constant, then linear to 0
    assert [lr_factor(linear, k * 1000, total) for k in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    cosine = ScheduleConfig(kind="cosine", warmup_kimg=10, final_fraction=0.1)
    assert lr_factor(cosine, 5_000, total) == pytest.approx(0.5 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.05))))
    assert lr_factor(cosine, total, total) == pytest.approx(0.1)


def test_the_loop_schedules_each_optimiser(tmp_path, example_files):
    config = case_config("gan_k2_ema", tmp_path, example_files, kimg=0.256, log_every_kimg=0.096,
                         lr_schedules={"G": {"kind": "linear"}})
    run_dir = genlab.train(config)
    opt = ckpt.load_training_state(ckpt.latest_checkpoint(run_dir))["optimizers"]
    assert opt["D"]["param_groups"][0]["lr"] == pytest.approx(2e-4)  # constant
    g_lr = opt["G"]["param_groups"][0]
    # The last step's rate was set before its images: 1 - 192/256 of the base rate.
    assert g_lr["initial_lr"] == pytest.approx(2e-4) and g_lr["lr"] == pytest.approx(2e-4 * (1 - 192 / 256))
    with pytest.raises(genlab.errors.ConfigError, match="optimisers \\['E'\\]"):
        genlab.train(case_config("gan_k2_ema", tmp_path, example_files, lr_schedules={"E": {"kind": "linear"}}))
