"""The model zoo (src/genlab/zoo, genlab.runs.zoo): every entry loads by ``zoo:NAME`` from its checked fp16
export alone, the whole zoo stays small, a damaged or missing entry is one clear error, tools write nothing
into the package, and ``genlab zoo pack`` turns a run into an entry that behaves as the run did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

import genlab
from genlab.cli.main import main
from genlab.data.captions import CaptionedConfig
from genlab.data.color_sprites import ColorSpritesConfig
from genlab.data.pairs import PairsConfig
from genlab.data.sprites import SpritesConfig
from genlab.errors import RunError
from genlab.metrics.classifier_features import ZOO_ATTRIBUTES, ZOO_DIGITS, sprite_judge
from genlab.runs import checkpoint as ckpt
from genlab.runs.locations import ZOO_DIR, resolve, zoo_names
from genlab.runs.zoo import MAX_STATS_ROWS, entries, pack

NAMES = zoo_names()
ZOO_LIMIT_MB = 40  # issue 30: the whole zoo, in the repository


def test_the_zoo_ships_the_judges_and_a_model_of_each_family_within_its_size():
    judges = {ZOO_DIGITS, *ZOO_ATTRIBUTES.values()}
    assert judges <= set(NAMES)  # genlab eval --features mnist or sprites works at once
    families = {entry.info["family"] for entry in entries()}
    assert {"gan", "vae", "diffusion", "cyclegan", "spade", "vqvae", "flow"} <= families
    assert sum(entry.size_bytes for entry in entries()) < ZOO_LIMIT_MB * 1e6


def test_sprites_are_judged_by_the_attribute_classifier_of_their_own_backgrounds():
    plain, textured = SpritesConfig(name="sprites", color=True), ColorSpritesConfig(name="color_sprites")
    assert sprite_judge(textured) == sprite_judge(PairsConfig(name="pairs", base=textured)) == "sprites-attributes"
    assert sprite_judge(CaptionedConfig(name="captioned", base=plain)) == "sprites-attributes-plain"
    assert sprite_judge(CaptionedConfig(name="captioned", base=textured)) == "sprites-attributes"


def roots(section) -> list:
    """Every ``root`` value in a config section."""
    if not isinstance(section, dict):
        return []
    return [v for k, v in section.items() if k == "root"] + [r for v in section.values() for r in roots(v)]


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_is_its_checked_fp16_export_alone_with_how_it_was_trained(name):
    entry = resolve(f"zoo:{name}")
    info = yaml.safe_load((entry / "entry.yaml").read_text())
    assert all(info.get(key) for key in ("family", "data", "command", "hardware", "description", "kimg"))
    data = yaml.safe_load((entry / "config.yaml").read_text())["data"]
    assert all(root is None for root in roots(data))  # the user's $GENLAB_DATA or cache, not the trainer's folder
    (checkpoint,) = ckpt.list_checkpoints(entry / "checkpoints")
    ckpt.verify_checkpoint(checkpoint)
    assert not (checkpoint / ckpt.STATE_FILE).exists()  # no optimiser, no D, nothing to resume
    for file in (ckpt.EXPORT_WEIGHTS, ckpt.MODULES_FILE):
        if (checkpoint / file).exists():
            with safe_open(checkpoint / file, framework="pt") as f:
                dtypes = {f.get_tensor(key).dtype for key in f.keys()}
            assert not any(d.is_floating_point and d != torch.float16 for d in dtypes), dtypes
    model = genlab.load(f"zoo:{name}")
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())


def test_a_name_that_is_not_in_the_zoo_is_one_error_listing_the_entries():
    with pytest.raises(RunError, match=r"no zoo entry 'mnist-gna'; the zoo has .*mnist-classifier"):
        genlab.load("zoo:mnist-gna")


def test_a_damaged_entry_is_refused_by_name(tmp_path):
    copy = tmp_path / "mnist-cgan"
    shutil.copytree(resolve("zoo:mnist-cgan"), copy)
    (weights,) = copy.glob(f"checkpoints/*/{ckpt.EXPORT_WEIGHTS}")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RunError, match=r"model\.safetensors does not match its checksum"):
        genlab.load(copy)
    weights.unlink()
    with pytest.raises(RunError, match=r"model\.safetensors is missing"):
        genlab.load(copy)


def test_zoo_list_shows_every_entry_and_its_headline(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["name"] for row in rows] == NAMES
    cgan = next(row for row in rows if row["name"] == "mnist-cgan")
    assert "conditional_accuracy 0.99" in cgan["headline"] and cgan["mb"] < 1


def test_sampling_a_zoo_entry_from_the_command_line(tmp_path):
    out = tmp_path / "digits.png"
    assert main(["sample", "zoo:mnist-cgan", "--class", "7", "-n", "8", "-o", str(out)]) == 0
    assert out.stat().st_size > 0


def test_evaluating_a_zoo_entry_writes_to_the_cache_not_the_package(tmp_path, monkeypatch, mnist_root):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in (ZOO_DIR / "mnist-cgan").rglob("*"))
    args = ["eval", "zoo:mnist-cgan", "--metrics", "cond_acc", "--n", "500", "--data-root", str(mnist_root)]
    assert main([*args, "-o", str(tmp_path / "out.json")]) == 0
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["run"] == "zoo:mnist-cgan" and record["conditional_accuracy"] > 0.95
    assert (tmp_path / "cache" / "zoo" / "mnist-cgan" / "eval").is_dir()
    assert sorted(p.name for p in (ZOO_DIR / "mnist-cgan").rglob("*")) == before
    card = json.loads(next((tmp_path / "cache" / "zoo" / "mnist-cgan" / "eval").glob("*/card.json")).read_text())
    assert card["feature_extractor"]["classifier_run"] == "zoo:mnist-classifier"  # the shipped judge by default


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, mnist_root) -> Path:
    from genlab.config import config_from_dict

    out = tmp_path_factory.mktemp("runs")
    return genlab.train(config_from_dict({
        "name": "tiny", "data": {"name": "mnist", "root": str(mnist_root), "limit": 512},
        "model": {"name": "dcgan", "latent_dim": 8, "g_channels": 8, "d_channels": 8, "d_norm": "none"},
        "objective": {"name": "gan", "ema_decay": 0.9},
        "train": {"kimg": 0.512, "batch_size": 32, "out_dir": str(out), "progress_bar": False, "tensorboard": False,
                  "log_every_kimg": 0.001, "snapshot_every_kimg": 0}}))


def test_pack_makes_an_entry_that_samples_as_the_run_did_and_refuses_to_resume(small_run, tmp_path):
    info = {"family": "gan", "data": "mnist", "command": "genlab train ...", "hardware": "cpu", "description": "d"}
    record = {"run": str(small_run), "fid": 1.0, "card": str(small_run / "eval" / "card.json")}
    (small_run / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    entry = pack(small_run, "tiny-gan", info, zoo_dir=tmp_path)
    # Its figures ship, not the trainer's folders: the run is the entry, the card's path is gone.
    assert json.loads((entry / "metrics.jsonl").read_text()) == {"run": "zoo:tiny-gan", "fid": 1.0}
    assert entry == tmp_path / "tiny-gan" and not list(tmp_path.glob(".tmp-*"))
    assert yaml.safe_load((entry / "entry.yaml").read_text())["kimg"] == 0.512
    assert len((entry / "stats.jsonl").read_text().splitlines()) <= MAX_STATS_ROWS + 1  # thinned when longer
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    run_images, entry_images = genlab.load(small_run).decode(z), genlab.load(entry).decode(z)
    assert (run_images - entry_images).abs().max() < 0.02  # fp16 weights: the same images to a few levels
    (checkpoint,) = ckpt.list_checkpoints(entry / "checkpoints")
    with pytest.raises(RunError, match=r"holds an exported model alone.*train your own"):
        ckpt.load_training_state(checkpoint)
    pack(small_run, "tiny-gan", info, roles=("D",), zoo_dir=tmp_path)  # another role ships beside the export
    assert isinstance(genlab.load(entry, role="D"), torch.nn.Module)
    with pytest.raises(Exception, match="letters, digits and dashes"):
        pack(small_run, "../escape", info, zoo_dir=tmp_path)


@pytest.mark.slow
def test_the_vae_entrys_card_is_reproduced_from_its_shipped_weights(tmp_path, monkeypatch, mnist_root):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    (card_path,) = (ZOO_DIR / "mnist-vae" / "eval").glob("*/card.json")
    shipped = json.loads(card_path.read_text())
    settings = shipped["settings"]
    args = ["eval", "zoo:mnist-vae", "--metrics", ",".join(settings["metrics"]), "--n", str(settings["n"]),
            "--seed", str(settings["seed"]), "--data-root", str(mnist_root), "-o", str(tmp_path / "out.json")]
    assert main(args) == 0
    again = json.loads((tmp_path / "out.json").read_text())
    assert again["fid"] == pytest.approx(shipped["results"]["fid"], abs=0.5)
    assert again["precision"] == pytest.approx(shipped["results"]["precision"], abs=0.01)
