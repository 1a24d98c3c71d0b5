"""One contract over every registered data set, built from the example its config supplies.

Both splits build; every field is what the spec says (dtype, shape, class indices in range,
finite numbers); ``batch`` turns images into float in [-1, 1] and leaves the rest as stored;
the same config gives the same data, and another seed other data where the config has a seed.
Each data config supplies its own ``example`` (``genlab.data.example_configs``), its files
filled in by ``example_files`` (tests/conftest.py), so a new data set is covered without editing
this file, and one without an example fails here.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from genlab.config import DataConfig, _build
from genlab.errors import ConfigError
from genlab.data import example_configs, load_dataset
from genlab.data.base import (Classes, Clusters, Factors, Image, LabelMap, Points, Spec, TensorDataset, Tokens, Trajectories,
                              field_shape, spec_from_json, spec_to_json)
from genlab.registry import DATASETS, Entry

EXAMPLES = example_configs()
NAMES = list(EXAMPLES)
# Each kind's storage type as genlab.data.base states it, written out so that the contract
# does not trust the code it checks.
DTYPES = {Image: torch.uint8, Classes: torch.int64, Clusters: torch.int64, Factors: torch.float32, Points: torch.float32,
          LabelMap: torch.uint8, Tokens: torch.int64, Trajectories: torch.float32}


def violations(data: TensorDataset) -> list[str]:
    """What in ``data`` breaks the promises of its spec and of ``batch`` (genlab.data.base), one line each."""
    found = []
    spec, fields = data.spec, data.fields
    if spec.keys() != fields.keys():
        found.append(f"spec fields {sorted(spec)} differ from data fields {sorted(fields)}")
    sizes = {name: len(t) for name, t in fields.items()}
    if len(set(sizes.values())) != 1 or not all(sizes.values()):
        found.append(f"fields hold different or no numbers of examples: {sizes}")
    for name, field in spec.items():
        t = fields.get(name)
        if t is None:
            continue
        if t.dtype != DTYPES[type(field)] or tuple(t.shape[1:]) != field_shape(field):
            found.append(f"{name}: {t.dtype} {tuple(t.shape[1:])} per example, the spec's {field} promises "
                         f"{DTYPES[type(field)]} {field_shape(field)}")
            continue
        if isinstance(field, (Classes, LabelMap)) and len(t) and not 0 <= t.min() <= t.max() < field.num_classes:
            found.append(f"{name}: class indices {t.min()}..{t.max()} outside the {field.num_classes} classes")
        if isinstance(field, Clusters) and len(t) and not 0 <= t.min() <= t.max() < field.num_clusters:
            found.append(f"{name}: cluster indices {t.min()}..{t.max()} outside the {field.num_clusters} clusters")
        if isinstance(field, Clusters) and abs(sum(field.shares) - 1) > 1e-6:
            found.append(f"{name}: cluster shares sum to {sum(field.shares)}, not 1")
        if isinstance(field, Tokens) and len(t) and not 0 <= t.min() <= t.max() < len(field.vocabulary):
            found.append(f"{name}: word indices {t.min()}..{t.max()} outside the {len(field.vocabulary)} words")
        if isinstance(field, (Factors, Points, Trajectories)) and not torch.isfinite(t).all():
            found.append(f"{name}: values that are not finite")
        if isinstance(field, Trajectories) and not 1 <= field.observed < field.steps:
            found.append(f"{name}: {field.observed} observed of {field.steps} steps leaves nothing to predict")
    if spec_from_json(spec_to_json(spec)) != spec:  # run folders store the spec as JSON; models are built from it
        found.append("the spec does not survive its JSON round trip")
    if found:
        return found
    n = min(len(data), 8)
    batch = data.batch(slice(0, n), "cpu")
    if set(batch) != set(spec) or len(batch) != n:
        found.append(f"batch of {n} has fields {sorted(batch)} of {len(batch)} examples")
    for name, field in spec.items():
        got, stored = batch[name], fields[name][:n]
        if isinstance(field, Image):
            if got.dtype != torch.float32 or got.shape != stored.shape or got.min() < -1 or got.max() > 1:
                found.append(f"{name}: batch gives {got.dtype} {tuple(got.shape)} in [{got.min()}, {got.max()}], "
                             f"not float32 {tuple(stored.shape)} in [-1, 1]")
            elif not torch.allclose(got, stored.float() / 127.5 - 1):
                found.append(f"{name}: batch images are not the stored ones scaled from 0..255 to [-1, 1]")
        elif isinstance(field, LabelMap):
            if got.dtype != torch.int64 or not torch.equal(got, stored[:, 0].long()):
                found.append(f"{name}: batch gives {got.dtype} {tuple(got.shape)}, not the stored indices as int64 [N, H, W]")
        elif not torch.equal(got, stored):
            found.append(f"{name}: batch changes a field that is not an image")
    return found


def example(name: str, example_files, **changes) -> DataConfig:
    """The example config of data set ``name``, its files filled in, with top-level ``changes``."""
    return _build(DataConfig, {**example_files(EXAMPLES[name]), **changes}, "data.", f"{name}'s example")


def test_every_data_set_supplies_an_example():
    missing = [name for name, config in EXAMPLES.items() if config is None]
    assert not missing, (f"data set(s) {missing} have no example: give the config class example = {{...}}, the keys "
                         "of a small config that builds offline in well under a second (EXAMPLE_FILES where it reads files)")


def test_a_data_set_without_an_example_is_reported_by_name():
    @dataclasses.dataclass
    class NoExampleConfig(DataConfig):
        name: str = "no_example"

    class Table:
        def entries(self) -> list[Entry]:
            return [*DATASETS.entries(), Entry("no_example", NoExampleConfig, lambda cfg, split: None)]

    found = example_configs(Table())
    assert [name for name, config in found.items() if config is None] == ["no_example"]
    assert found["sprites"] == EXAMPLES["sprites"]


@pytest.mark.parametrize("name", NAMES)
def test_both_splits_build_as_the_spec_promises(name, example_files):
    cfg = example(name, example_files)
    for split in ("train", "test"):
        data = load_dataset(cfg, split)
        assert isinstance(data, TensorDataset) and len(data) > 0, split
        assert violations(data) == [], split


@pytest.mark.parametrize("name", NAMES)
def test_every_image_set_takes_clusters_and_others_refuse_them_by_name(name, example_files):
    plain = load_dataset(example(name, example_files))
    cfg = example(name, example_files, clusters=3)
    if not isinstance(plain.spec.get("image"), Image):
        with pytest.raises(ConfigError, match="data.clusters=0"):
            load_dataset(cfg)
        return
    for split in ("train", "test"):
        data = load_dataset(cfg, split)
        assert violations(data) == [], split
        assert data.spec["cluster"] == Clusters(data.spec["cluster"].shares) and data.spec["cluster"].num_clusters == 3
        assert all(torch.equal(data[key], value) for key, value in load_dataset(example(name, example_files), split).fields.items())


@pytest.mark.parametrize("name", NAMES)
def test_the_same_config_gives_the_same_data_and_another_seed_other_data(name, example_files):
    cfg = example(name, example_files)
    first, again = load_dataset(cfg), load_dataset(example(name, example_files))
    assert first.spec == again.spec
    for key in first.fields:
        assert torch.equal(first[key], again[key]), key
    if "seed" not in {f.name for f in dataclasses.fields(cfg)}:
        return
    other = load_dataset(dataclasses.replace(cfg, seed=cfg.seed + 1))
    assert any(first[key].shape != other[key].shape or not torch.equal(first[key], other[key]) for key in first.fields), \
        f"{name}: seed {cfg.seed + 1} gives the same data as seed {cfg.seed}"


# ----------------------------------------------------------------------------- the contract can fail


def _broken(spec: Spec, fields: dict[str, torch.Tensor]) -> TensorDataset:
    """A TensorDataset that skips its own checks, as a builder with a bug could hand one over."""
    data = object.__new__(TensorDataset)
    for key, value in (("name", "broken"), ("spec", spec), ("fields", fields)):
        object.__setattr__(data, key, value)
    return data


def _sound() -> tuple[Spec, dict[str, torch.Tensor]]:
    spec = {"image": Image(1, 4, 4), "label": Classes(("a", "b")), "mask": LabelMap(("bg", "fg"), 4, 4),
            "caption": Tokens(("<pad>", "x", "y"), 3), "points": Points(2)}
    fields = {"image": torch.randint(0, 256, (5, 1, 4, 4), dtype=torch.uint8), "label": torch.tensor([0, 1, 1, 0, 1]),
              "mask": torch.randint(0, 2, (5, 1, 4, 4), dtype=torch.uint8), "caption": torch.randint(0, 3, (5, 3)),
              "points": torch.randn(5, 2)}
    return spec, fields


def test_the_contract_holds_for_a_sound_data_set():
    assert violations(TensorDataset("sound", *_sound())) == []


@pytest.mark.parametrize("damage, reported", [
    (lambda s, f: f.update(image=f["image"].float()), "image: torch.float32"),  # float pixels, not uint8
    (lambda s, f: f.update(image=f["image"][:, :, :3]), "image: torch.uint8 (1, 3, 4)"),  # not the declared shape
    (lambda s, f: s.update(image=Image(3, 4, 4)), "image: torch.uint8 (1, 4, 4)"),  # spec says RGB, data is grey
    (lambda s, f: f.pop("points"), "differ from data fields"),  # a field of the spec missing
    (lambda s, f: f.update(label=f["label"][:4]), "different or no numbers of examples"),
    (lambda s, f: f.update(label=torch.tensor([0, 1, 2, 0, 1])), "label: class indices 0..2 outside the 2 classes"),
    (lambda s, f: f.update(label=torch.tensor([0, -1, 1, 0, 1])), "label: class indices -1..1"),
    (lambda s, f: f["mask"].fill_(2), "mask: class indices 2..2 outside the 2 classes"),
    (lambda s, f: f["caption"].fill_(3), "caption: word indices 3..3 outside the 3 words"),
    (lambda s, f: f["points"].fill_(float("nan")), "points: values that are not finite"),
])
def test_the_contract_reports_a_spec_that_does_not_match_the_tensors(damage, reported):
    spec, fields = _sound()
    damage(spec, fields)
    found = violations(_broken(spec, fields))
    assert any(reported in line for line in found), found


def test_the_contract_reports_a_batch_that_does_not_convert_images(monkeypatch):
    data = TensorDataset("sound", *_sound())
    monkeypatch.setattr(TensorDataset, "batch", lambda self, index, device="cpu": {k: v[index] for k, v in self.fields.items()})
    assert any("image: batch gives torch.uint8" in line for line in violations(data))
