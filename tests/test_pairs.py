"""Image-to-image data: pair builders on known images, colour sprites, photos, paired folders, unpaired."""

from __future__ import annotations

import re
import socket
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import DataConfig, _build
from genlab.data import load_dataset, pairs, photos
from genlab.data.base import LabelMap, spec_from_json, spec_to_json
from genlab.data.color_sprites import FACTORS, ColorSpritesConfig, render_backgrounds, render_color_sprites
from genlab.data.photos import PhotosConfig, crop_box
from genlab.data.sprites import pixel_grid, shape_coverage
from genlab.errors import ConfigError, DataError


def data(raw: dict) -> DataConfig:
    """A data config as loaded from YAML (nested configs resolved by name)."""
    return _build(DataConfig, raw, "data.", "test")


def color_sprites(**keys) -> dict:
    return {"name": "color_sprites", "n_train": 32, "n_test": 16, **keys}


# ----------------------------------------------------------------------------- builders on known images


def test_edges_of_a_white_square_lie_on_its_border_only():
    square = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    square[..., 8:24, 8:24] = 255
    source, target = pairs.edges(square)
    assert source.shape == (1, 1, 32, 32) and source.dtype == torch.uint8 and target is square
    edge = source[0, 0] == 0
    assert set(source.unique().tolist()) == {0, 255}
    band = torch.zeros(32, 32, dtype=torch.bool)  # within one pixel of the square's outline
    band[7:25, 7:25] = True
    band[9:23, 9:23] = False
    assert edge.any() and not (edge & ~band).any()
    for side in (edge[7:9, 9:23], edge[23:25, 9:23], edge[9:23, 7:9], edge[9:23, 23:25]):
        assert side.any(0).all() or side.any(1).all(), "every side of the square is traced"


def test_grey_of_pure_red_is_its_luma():
    red = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    red[:, 0] = 255
    source, target = pairs.grey_to_color(red)
    assert source.shape == (2, 1, 8, 8) and (source == round(0.299 * 255)).all() and target is red
    with pytest.raises(ConfigError, match="colour"):
        pairs.grey_to_color(red[:, :1])


def test_sr4x_of_a_constant_image_is_constant_and_blurs_detail():
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    source, _ = pairs.low_resolution(flat)
    assert source.shape == flat.shape and (source == 77).all()
    checks = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 255
    source, _ = pairs.low_resolution(checks.to(torch.uint8).expand(1, 1, 16, 16))
    assert (source.float() - 127.5).abs().max() <= 1, "one-pixel detail averages away at a quarter size"
    with pytest.raises(ConfigError, match="divisible by 4"):
        pairs.low_resolution(flat[..., :14, :14])


def test_inpaint_holes_are_seeded_and_only_the_hole_changes():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    holes = pairs.random_holes(np.random.default_rng(5), 64, 32, 32)
    assert torch.equal(holes, pairs.random_holes(np.random.default_rng(5), 64, 32, 32))
    assert not torch.equal(holes, pairs.random_holes(np.random.default_rng(6), 64, 32, 32))
    sides = holes[:, 2:] - holes[:, :2]
    assert sides.min() >= 8 and sides.max() <= 16 and holes[:, :2].min() >= 0 and holes[:, 2:].max() <= 32
    source, target = pairs.inpaint(images, holes)
    top, left, bottom, right = holes[0].tolist()
    assert (source[0, :, top:bottom, left:right] == pairs.HOLE_FILL).all()
    changed = source != images
    changed[0, :, top:bottom, left:right] = False
    assert not changed[0].any() and target is images

    cfg = {"name": "pairs", "base": color_sprites(), "kind": "inpaint"}
    a, b = load_dataset(data(cfg))["source"], load_dataset(data(cfg))["source"]
    assert torch.equal(a, b) and not torch.equal(a, load_dataset(data({**cfg, "seed": 1}))["source"])


def test_label_palette_round_trips_and_refuses_other_colours():
    labels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    rgb = pairs.palette_image(labels)
    assert rgb.shape == (1, 3, 16, 16) and rgb.dtype == torch.uint8
    assert torch.equal(pairs.labels_from_palette(rgb), labels)
    assert len(torch.unique(pairs.PALETTE, dim=0)) == 256 and pairs.PALETTE[0].tolist() == [0, 0, 0]
    assert pairs.PALETTE[1].tolist() == [128, 0, 0]  # the PASCAL VOC colour map
    with pytest.raises(ValueError, match="palette"):
        pairs.labels_from_palette(torch.full((1, 3, 2, 2), 7, dtype=torch.uint8))


def test_label_pairs_render_the_segmentation_of_colour_sprites():
    ds = load_dataset(data({"name": "pairs", "base": color_sprites(), "kind": "labels", "direction": "BtoA"}))
    assert torch.equal(pairs.labels_from_palette(ds["target"]), ds["segmentation"])
    base = load_dataset(data(color_sprites()))
    assert torch.equal(ds["source"], base["image"]) and torch.equal(ds["factors"], base["factors"])


def test_next_frame_pairs_are_consecutive_rendered_frames():
    frames = 4
    base_cfg = color_sprites(n_train=3, frames=frames)
    base = load_dataset(data(base_cfg))
    ds = load_dataset(data({"name": "pairs", "base": base_cfg, "kind": "next_frame"}))
    assert len(base) == 3 * frames and len(ds) == 3 * (frames - 1)
    for k in range(len(ds)):
        s, t = divmod(k, frames - 1)
        assert torch.equal(ds["source"][k], base["image"][s * frames + t])
        assert torch.equal(ds["target"][k], base["image"][s * frames + t + 1])
        assert ds["factors"][k, -1] == t + 1, "non-image fields are those of the target frame"
    rendered, _ = render_color_sprites(ds["factors"], 32)
    assert torch.equal(rendered, ds["target"])
    steps = base["factors"].view(3, frames, -1)[:, 1:, 3:5] - base["factors"].view(3, frames, -1)[:, :-1, 3:5]
    assert steps.abs().amax() > 0 and (base["factors"].view(3, frames, -1)[:, :, 0].diff(dim=1) == 0).all()
    back = load_dataset(data({"name": "pairs", "base": base_cfg, "kind": "next_frame", "direction": "BtoA"}))
    assert torch.equal(back["source"], ds["target"]) and back["factors"][0, -1] == 0
    with pytest.raises(ConfigError, match="frames"):
        load_dataset(data({"name": "pairs", "base": color_sprites(), "kind": "next_frame"}))


def test_pairs_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="one image field"):
        load_dataset(data({"name": "pairs", "base": {"name": "toy_ring", "n_train": 10}, "kind": "edges"}))
    with pytest.raises(ConfigError, match="label map"):
        load_dataset(data({"name": "pairs", "base": {"name": "sprites", "n_train": 10}, "kind": "labels"}))
    with pytest.raises(ConfigError, match=re.escape("data.kind must be one of")):
        data({"name": "pairs", "kind": "edgez"})
    with pytest.raises(ConfigError, match=re.escape("did you mean data.base.'image_size'")):
        data({"name": "pairs", "base": {"name": "color_sprites", "imagesize": 32}})


# ----------------------------------------------------------------------------- colour sprites


def test_color_sprites_are_deterministic_with_a_label_map_field():
    a, b = load_dataset(data(color_sprites(seed=3))), load_dataset(data(color_sprites(seed=3)))
    assert all(torch.equal(a[k], b[k]) for k in a.spec)
    assert not torch.equal(a["image"], load_dataset(data(color_sprites(seed=4)))["image"])
    assert not torch.equal(a["factors"][:16], load_dataset(data(color_sprites(seed=3)), "test")["factors"])
    assert a["image"].shape == (32, 3, 32, 32) and a["segmentation"].shape == (32, 1, 32, 32)
    assert a.spec["segmentation"] == LabelMap(("background", "square", "ellipse", "heart"), 32, 32)
    assert a.spec["factors"].names == FACTORS and spec_from_json(spec_to_json(a.spec)) == a.spec
    batch = a.batch(slice(0, 4))
    assert batch["segmentation"].dtype == torch.int64 and batch["segmentation"].shape == (4, 32, 32)
    assert torch.equal(batch["segmentation"], a["segmentation"][:4, 0].long()), "label maps are never rescaled"
    assert set(a["segmentation"].unique().tolist()) <= {0, 1, 2, 3}
    with pytest.raises(ConfigError, match="textures"):
        ColorSpritesConfig(name="color_sprites", textures=("plaid",))


@pytest.mark.parametrize("size", [32, 64])
def test_color_sprite_label_map_marks_where_the_shape_is_drawn(size):
    ds = load_dataset(data(color_sprites(image_size=size, shapes=4, n_train=64)))
    drawn = (ds["image"] != render_backgrounds(ds["factors"], size)).any(1)  # [N, S, S]
    inside = ds["segmentation"][:, 0] > 0
    assert inside.any((1, 2)).all() and not (inside & ~drawn).any()
    coverage = shape_coverage(ds["factors"], pixel_grid(size))
    edge = (coverage > 0) & (coverage < 0.5)
    assert not (drawn & ~inside & ~edge).any(), "outside the label, only pixels under half covered differ"
    shape = ds["factors"][:, 0].long() + 1
    assert (ds["segmentation"][:, 0].flatten(1).amax(1).long() == shape).all()


# ----------------------------------------------------------------------------- photos


def test_photos_load_offline_with_disjoint_train_and_test_regions(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("photos must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    photos.load_photo.cache_clear()  # read the files now, under the block
    cfg = data({"name": "photos", "image_size": 32, "n_train": 16, "n_test": 8})
    train, test = load_dataset(cfg), load_dataset(cfg, "test")
    assert train["image"].shape == (16, 3, 32, 32) and test["image"].shape == (8, 3, 32, 32)
    assert torch.equal(train["image"], load_dataset(cfg)["image"]) and train["image"].float().std() > 20
    grey = load_dataset(data({"name": "photos", "image_size": 16, "n_train": 4, "channels": 1}))
    assert grey["image"].shape == (4, 1, 16, 16)
    rng = np.random.default_rng(0)
    for width, height in ((600, 400), (300, 500)):
        cut = round(max(width, height) * 0.75)
        along = 0 if width >= height else 1
        for split in ("train", "test"):
            for _ in range(200):
                box = crop_box(rng, width, height, split, 0.25, (0.15, 0.9))
                assert box[2] - box[0] == box[3] - box[1] > 0 and box[2] <= width and box[3] <= height
                assert box[along + 2] <= cut if split == "train" else box[along] >= cut
    with pytest.raises(ConfigError, match="pick from"):
        PhotosConfig(name="photos", photos=("lily",))


# ----------------------------------------------------------------------------- paired folders


def _pair_png(path: Path, width: int = 16, height: int = 8) -> Path:
    half = width // 2
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, :half, 0] = 255  # A red
    array[:, half:, 2] = 255  # B blue
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _warned(record, path: Path) -> list[str]:
    return [str(w.message) for w in record if str(path) in str(w.message)]


def test_paired_folder_splits_halves_and_names_bad_files(tmp_path):
    for i in range(3):
        _pair_png(tmp_path / "train" / f"{i}.png")
    odd = _pair_png(tmp_path / "train" / "odd.png", width=17)
    corrupt = tmp_path / "train" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    _pair_png(tmp_path / "val" / "0.png")
    cfg = data({"name": "paired_folder", "path": str(tmp_path), "image_size": 8})
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = load_dataset(cfg)
    assert [("odd" in m) for m in _warned(record, odd)] == [True]
    assert len(_warned(record, corrupt)) == 1 and len(record) == 2
    assert ds["source"].shape == ds["target"].shape == (3, 3, 8, 8)
    assert (ds["source"][:, 0] == 255).all() and (ds["target"][:, 2] == 255).all() and (ds["target"][:, 0] == 0).all()
    test = load_dataset(data({"name": "paired_folder", "path": str(tmp_path), "image_size": 8, "direction": "BtoA"}),
                        "test")
    assert len(test) == 1 and (test["source"][:, 2] == 255).all(), "val/ serves the test split; BtoA swaps"


def test_paired_folder_of_matched_halves_and_missing_folders(tmp_path):
    for side, colour in (("A", (255, 0, 0)), ("B", (0, 0, 255))):
        for name in ("x", "y"):
            (tmp_path / "train" / side).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 10), colour).save(tmp_path / "train" / side / f"{name}.png")
    lonely = tmp_path / "train" / "A" / "z.png"
    Image.new("RGB", (12, 10)).save(lonely)
    with pytest.warns(UserWarning, match=re.escape(str(lonely))):
        ds = load_dataset(data({"name": "paired_folder", "path": str(tmp_path), "image_size": 4, "channels": 1}))
    assert ds["source"].shape == (2, 1, 4, 4) and (ds["source"] == 76).all() and (ds["target"] == 29).all()
    with pytest.raises(DataError, match=re.escape("test/ or val/")):
        load_dataset(data({"name": "paired_folder", "path": str(tmp_path)}), "test")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "notes.txt").write_text("no images")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no usable pairs"):
        load_dataset(data({"name": "paired_folder", "path": str(tmp_path)}), "test")


# ----------------------------------------------------------------------------- unpaired


def test_unpaired_domains_share_a_shape_and_are_shuffled_independently():
    raw = {"name": "unpaired", "a": color_sprites(n_train=20), "b": {"name": "sprites", "n_train": 12}}
    ds = load_dataset(data(raw))
    assert len(ds) == 12 and ds.spec["a"] == ds.spec["b"] and ds["b"].shape == (12, 3, 32, 32)
    assert torch.equal(ds["b"][:, 0], ds["b"][:, 2]), "grey b is replicated to RGB"
    sprites_b = load_dataset(data(raw["b"]))["image"]
    assert sorted(ds["b"][:, 0].flatten(1).sum(1).tolist()) == sorted(sprites_b[:, 0].flatten(1).sum(1).tolist())
    assert not torch.equal(ds["b"][:, :1], sprites_b), "b is reshuffled"
    assert torch.equal(load_dataset(data(raw))["a"], ds["a"])
    assert not torch.equal(load_dataset(data({**raw, "seed": 1}))["a"], ds["a"])
    with pytest.raises(ConfigError, match="data.b.image_size"):
        load_dataset(data({**raw, "b": {"name": "sprites", "n_train": 12, "image_size": 64}}))
