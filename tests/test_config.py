"""Config mistakes are reported with the key and a fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genlab.cli.main import main
from genlab.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


BASE = """
name: t
data: {name: sprites, n_train: 256, n_test: 64}
model: {name: conv_vae}
objective: {name: vae}
"""


def test_misspelled_key_suggests_the_nearest_valid_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key train\.'batchsize'; did you mean train\.'batch_size'"):
        load_config(write(tmp_path, BASE + "train: {batchsize: 3}\n"))


def test_misspelled_model_name_suggests_the_registered_one(tmp_path):
    with pytest.raises(ConfigError, match="(?i)did you mean 'conv_vae'"):
        load_config(write(tmp_path, BASE.replace("conv_vae", "convvae")))


def test_wrong_type_names_key_and_expected_type(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.batch_size must be int, got 'many'"):
        load_config(write(tmp_path, BASE + "train: {batch_size: many}\n"))


def test_literal_values_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.precision must be one of \['fp32', 'bf16', 'auto'\]"):
        load_config(write(tmp_path, BASE + "train: {precision: fp16}\n"))


def test_dotted_overrides_are_typed_and_strict(tmp_path):
    config = load_config(write(tmp_path, BASE), ["train.batch_size=16", "objective.lr=2e-4", "model.latent_dim=4"])
    assert (config.train.batch_size, config.objective.lr, config.model.latent_dim) == (16, 2e-4, 4)
    with pytest.raises(ConfigError, match="did you mean objective.'beta'"):
        load_config(write(tmp_path, BASE), ["objective.betta=2"])


def test_model_and_objective_families_must_match(tmp_path):
    gan_objective = BASE.replace("{name: vae}", "{name: gan}")
    with pytest.raises(ConfigError, match="objective 'gan' trains gan models but model 'conv_vae' is a vae model"):
        load_config(write(tmp_path, gan_objective))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    load_config(path)


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    code = main(["train", str(write(tmp_path, BASE + "train: {kimgs: 1}\n"))])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean train.'kimg'" in err and "Traceback" not in err


def test_cli_missing_config_file_is_a_clear_error(capsys):
    assert main(["train", "no/such.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(tmp_path, capsys):
    assert main(["train", str(write(tmp_path, BASE)), "--dry-run", "--set", "train.kimg=7"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["kimg"] == 7 and resolved["model"]["latent_dim"] == 10
    assert resolved["data"]["image_size"] == 32  # defaults filled in from the dataclasses


def test_api_applies_overrides_to_a_config_object_too(tmp_path):
    from genlab.config import override_config

    config = load_config(write(tmp_path, BASE))
    assert override_config(config, ["train.kimg=3"]).train.kimg == 3
    with pytest.raises(ConfigError, match="did you mean train.'kimg'"):
        override_config(config, ["train.kimgs=3"])


def test_every_registry_fills_itself_from_its_package(tmp_path, monkeypatch):
    """A registry imports each module of its package on first lookup; errors name the module and the table."""
    import genlab.registry
    from genlab.registry import Registry, UnknownNameError

    package = tmp_path / "plugins_for_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from genlab.registry import THINGS\nTHINGS.add('alpha', 1)\n")
    (package / "b.py").write_text("from genlab.registry import THINGS\nTHINGS.add('beta', 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    things = Registry("thing", "plugins_for_test")
    monkeypatch.setattr(genlab.registry, "THINGS", things, raising=False)
    assert things.names() == ["alpha", "beta"] and things.get("beta") == 2
    with pytest.raises(UnknownNameError, match="unknown thing 'alpa'. Did you mean 'alpha'"):
        things.get("alpa")
    with pytest.raises(ValueError, match="thing 'alpha' is registered twice"):
        things.add("alpha", 3)

    (package / "c.py").write_text("raise RuntimeError('broken plugin')\n")
    broken = Registry("thing", "plugins_for_test")
    monkeypatch.setattr(genlab.registry, "THINGS", broken)
    with pytest.raises(RuntimeError, match="broken plugin") as err:
        broken.names()
    assert "while importing plugins_for_test.c to find what plugins_for_test registers" in err.value.__notes__[0]
