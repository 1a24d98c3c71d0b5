"""Data contracts: sprites, standard sets (real MNIST, offline), image folders, toy mixtures."""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
import tarfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.config import DataConfig, _build
from genlab.data import base as spec
from genlab.data import load_dataset, standard
from genlab.data.folder import FolderConfig
from genlab.data.sprites import FACTORS, SHAPES, SpritesConfig
from genlab.data.standard import StandardConfig
from genlab.data.toy import GridConfig, Mixture1DConfig, RingConfig, density_1d, mixture_modes
from genlab.errors import ConfigError, DataError

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh home, so the default cache (~/.cache/genlab/data) is a temporary folder."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(standard.DATA_ENV, raising=False)
    return tmp_path / "home"


# ----------------------------------------------------------------------------- sprites


def sprites(**keys) -> SpritesConfig:
    return SpritesConfig(name="sprites", **{"n_train": 500, "n_test": 100, **keys})


def test_sprites_are_deterministic_per_seed_and_split():
    a, b = load_dataset(sprites(seed=3)), load_dataset(sprites(seed=3))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["factors"], b["factors"])
    other = load_dataset(sprites(seed=4))
    assert not torch.equal(a["image"], other["image"])
    test = load_dataset(sprites(seed=3), "test")
    assert len(test) == 100 and not torch.equal(a["factors"][:100], test["factors"])


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("color", [False, True])
def test_sprites_shapes_and_factor_ranges(size, color):
    ds = load_dataset(sprites(image_size=size, color=color, shapes=4))
    channels = 3 if color else 1
    assert ds["image"].shape == (500, channels, size, size) and ds["image"].dtype == torch.uint8
    assert ds["factors"].shape == (500, 6 if color else 5) and ds["factors"].dtype == torch.float32
    assert ds.spec["factors"] == spec.Factors(FACTORS + (("hue",) if color else ())) and "label" not in ds.spec
    shape, scale, rotation, pos = ds["factors"][:, 0], ds["factors"][:, 1], ds["factors"][:, 2], ds["factors"][:, 3:5]
    assert set(shape.unique().tolist()) == set(range(len(SHAPES)))
    assert scale.min() >= 0.5 and scale.max() <= 1.0
    assert rotation.min() >= 0 and rotation.max() < np.pi / 2
    assert pos.min() >= 0 and pos.max() <= 1
    assert (ds["image"].flatten(1).amax(1) == 255).all(), "every sprite is drawn, with solid pixels"


def test_sprite_labels_describe_the_pixels():
    ds = load_dataset(sprites(n_train=1000))
    ink = ds["image"][:, 0].float()
    coords = torch.arange(32.0)
    mass = ink.sum((1, 2))
    centroid_x = (ink.sum(1) * coords).sum(1) / mass
    centroid_y = (ink.sum(2) * coords).sum(1) / mass
    # Shapes are not centrally symmetric (heart), so allow a little spread, not a lot.
    assert np.corrcoef(centroid_x, ds["factors"][:, 3])[0, 1] > 0.98
    assert np.corrcoef(centroid_y, ds["factors"][:, 4])[0, 1] > 0.98
    for shape in range(3):  # area grows with scale squared, for each shape
        rows = ds["factors"][:, 0] == shape
        assert np.corrcoef(mass[rows], ds["factors"][rows, 1] ** 2)[0, 1] > 0.95


def test_sprites_render_20k_in_seconds():
    start = time.perf_counter()
    ds = load_dataset(SpritesConfig(name="sprites"))
    elapsed = time.perf_counter() - start
    assert ds["image"].shape == (20000, 1, 32, 32)
    assert elapsed < 10.0, f"20k sprites took {elapsed:.1f} s"  # ~1 s on one core; slack for load


def test_sprites_bad_keys_are_config_errors():
    with pytest.raises(ConfigError, match="shapes"):
        sprites(shapes=9)
    with pytest.raises(ConfigError, match=re.escape("did you mean data.'image_size'")):
        _build(DataConfig, {"name": "sprites", "imagesize": 32}, "data.", "test")


def test_load_dataset_through_the_config_registry():
    cfg = _build(DataConfig, {"name": "sprites", "n_train": 64, "color": True}, "data.", "test")
    assert isinstance(cfg, SpritesConfig)
    assert load_dataset(cfg)["image"].shape == (64, 3, 32, 32)
    with pytest.raises(ValueError, match="split"):
        load_dataset(cfg, "valid")


# ----------------------------------------------------------------------------- MNIST and friends


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_mnist_reads_the_official_files_as_is(mnist_root, offline):
    before = _snapshot(mnist_root)
    train = load_dataset(StandardConfig(name="mnist", root=str(mnist_root)))
    test = load_dataset(StandardConfig(name="mnist", root=str(mnist_root)), "test")
    assert train["image"].shape == (60000, 1, 28, 28) and test["image"].shape == (10000, 1, 28, 28)
    assert train["image"].dtype == torch.uint8 and train["label"].dtype == torch.int64
    assert train["label"].min() == 0 and train["label"].max() == 9 and train.spec["label"].num_classes == 10
    assert train.spec == {"image": spec.Image(1, 28, 28), "label": spec.Classes(tuple("0123456789"))}
    assert train["image"].float().mean().item() == pytest.approx(33.318, abs=0.01)  # the known MNIST mean
    assert torch.bincount(test["label"]).tolist()[:2] == [980, 1135]  # known test counts of 0s and 1s
    assert _snapshot(mnist_root) == before, "nothing may be written into the user's data root"


def test_mnist_resize_channels_limit_and_env_root(mnist_root, offline, monkeypatch):
    monkeypatch.setenv(standard.DATA_ENV, str(mnist_root))
    ds = load_dataset(StandardConfig(name="mnist", image_size=32, channels=3, limit=100), "test")
    assert ds["image"].shape == (100, 3, 32, 32) and ds["image"].dtype == torch.uint8 and len(ds["label"]) == 100
    assert torch.equal(ds["image"][:, 0], ds["image"][:, 2])  # grey replicated
    start = time.perf_counter()
    load_dataset(StandardConfig(name="mnist", image_size=32, channels=3, limit=100), "test")
    assert time.perf_counter() - start < 0.05, "a second load in the same process comes from memory"


def test_missing_files_in_a_user_root_are_never_downloaded(tmp_path, offline):
    with pytest.raises(DataError) as err:
        load_dataset(StandardConfig(name="fashion_mnist", root=str(tmp_path)), "test")
    message = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message and "GENLAB_DATA" in message
    assert list(tmp_path.iterdir()) == []


def test_missing_files_with_download_disabled(home, offline):
    with pytest.raises(DataError, match=re.escape("cifar-10-binary.tar.gz")) as err:
        load_dataset(StandardConfig(name="cifar10", download=False))
    assert str(home / ".cache" / "genlab" / "data" / "cifar-10-batches-bin") in str(err.value)
    assert "data_batch_1.bin" in str(err.value)


def test_offline_download_fails_clearly_and_leaves_nothing(home, monkeypatch):
    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError) as err:
        load_dataset(StandardConfig(name="mnist"), "test")
    cache = home / ".cache" / "genlab" / "data"
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and str(cache / "MNIST" / "raw") in str(
        err.value
    )
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def _local_mirror(
    source: standard.Source, mnist_root: Path, md5: str | None = None
) -> standard.Source:
    """The MNIST source with file:// URLs into the shared copy: the download code, no network."""
    folder = (mnist_root / "MNIST" / "raw").as_uri() + "/"
    downloads = tuple(
        dataclasses.replace(r, urls=(folder + r.filename,), md5=md5 or r.md5)
        for r in source.downloads
    )
    return dataclasses.replace(source, downloads=downloads)


def test_download_verifies_md5_and_fills_the_cache(home, mnist_root, monkeypatch):
    official = standard.SOURCES["mnist"]
    monkeypatch.setitem(
        standard.SOURCES, "mnist", _local_mirror(official, mnist_root, md5="0" * 32)
    )
    with pytest.raises(DataError, match="md5"):
        load_dataset(StandardConfig(name="mnist", limit=10), "test")
    raw = home / ".cache" / "genlab" / "data" / "MNIST" / "raw"
    assert list(raw.iterdir()) == [], "a file that fails its checksum is not kept"

    monkeypatch.setitem(standard.SOURCES, "mnist", _local_mirror(official, mnist_root))
    ds = load_dataset(StandardConfig(name="mnist", limit=10), "test")
    assert len(ds) == 10
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)


@pytest.mark.parametrize("damage", ["truncated", "not_gzip", "wrong_magic"])
def test_corrupt_idx_file_is_named(tmp_path, mnist_root, damage):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES[2:]:
        (raw / name).write_bytes((mnist_root / "MNIST" / "raw" / name).read_bytes())
    bad = raw / "t10k-images-idx3-ubyte.gz"
    content = bad.read_bytes()
    bad.write_bytes(
        {
            "truncated": content[: len(content) // 2],
            "not_gzip": b"<html>404 not found</html>",
            "wrong_magic": gzip.compress(b"\x00\x00\x08\x01" + bytes(100)),
        }[damage]
    )
    with pytest.raises(DataError, match=re.escape("t10k-images-idx3-ubyte.gz")) as err:
        load_dataset(StandardConfig(name="mnist", root=str(tmp_path)), "test")
    assert str(bad) in str(err.value)


def _fake_cifar_test_batch(n: int = 10000) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    images[:, 0] = labels[:, None, None] * 20  # red plane encodes the label; green, blue fixed
    images[:, 1] = 7
    images[:, 2] = 200
    records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return records.tobytes(), images, labels


@pytest.mark.parametrize("packed", [False, True])
def test_cifar10_binary_from_folder_or_unextracted_tar(tmp_path, offline, packed):
    blob, images, labels = _fake_cifar_test_batch()
    if packed:
        with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz", compresslevel=1) as tar:
            info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    else:
        (tmp_path / "cifar-10-batches-bin").mkdir()
        (tmp_path / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(blob)
    before = _snapshot(tmp_path)
    ds = load_dataset(StandardConfig(name="cifar10", root=str(tmp_path)), "test")
    assert ds["image"].shape == (10000, 3, 32, 32) and torch.equal(ds["image"], torch.from_numpy(images))
    assert torch.equal(ds["label"], torch.from_numpy(labels).long()) and ds.spec["label"].names[0] == "airplane"
    grey = load_dataset(
        StandardConfig(name="cifar10", root=str(tmp_path), channels=1, image_size=16), "test"
    )
    assert grey["image"].shape == (10000, 1, 16, 16)
    assert _snapshot(tmp_path) == before


def test_standard_config_rejects_bad_channels():
    with pytest.raises(ConfigError, match="channels"):
        StandardConfig(name="mnist", channels=2)


# ----------------------------------------------------------------------------- image folders


def _png(path: Path, size=(40, 30), color=(255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _warnings_naming(record, path: Path) -> list[str]:
    return [str(w.message) for w in record if str(path) in str(w.message)]


def test_image_folder_labels_from_subfolders_and_skips_bad_files(tmp_path):
    for i in range(3):
        _png(tmp_path / "cats" / f"{i}.png", color=(255, 0, 0))
        _png(tmp_path / "dogs" / "nested" / f"{i}.jpg", color=(0, 0, 255))
    corrupt = tmp_path / "cats" / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(0).bytes(500))
    truncated = tmp_path / "dogs" / "truncated.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        truncated
    )
    truncated.write_bytes(truncated.read_bytes()[:2000])
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    (tmp_path / ".DS_Store").write_bytes(b"\0")

    cfg = FolderConfig(name="image_folder", path=str(tmp_path), image_size=16, test_fraction=0.0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = load_dataset(cfg)
    for bad in (corrupt, truncated, notes):
        assert len(_warnings_naming(record, bad)) == 1, bad
    assert len(record) == 3
    assert ds["image"].shape == (6, 3, 16, 16) and ds["image"].dtype == torch.uint8
    assert ds.spec["label"] == spec.Classes(("cats", "dogs"))
    assert ds["label"].tolist() == [0, 0, 0, 1, 1, 1]
    assert (ds["image"][:3, 0] == 255).all() and (ds["image"][3:, 2] > 250).all()  # red cats, blue (JPEG) dogs


def test_image_folder_centre_crops_and_grey(tmp_path):
    strip = np.zeros((20, 60, 3), dtype=np.uint8)
    strip[:, :20] = (255, 0, 0)
    strip[:, 20:40] = (0, 255, 0)
    strip[:, 40:] = (0, 0, 255)
    Image.fromarray(strip).save(tmp_path / "strip.png")
    ds = load_dataset(
        FolderConfig(name="image_folder", path=str(tmp_path), image_size=8, test_fraction=0.0)
    )
    assert list(ds.spec) == ["image"]
    # Only the green middle survives; the resampling filter may bleed a little at the edges.
    assert (ds["image"][0, 1] > 224).all() and (ds["image"][0, [0, 2]] < 32).all()
    grey = load_dataset(
        FolderConfig(
            name="image_folder", path=str(tmp_path), image_size=8, channels=1, test_fraction=0.0
        )
    )
    assert grey["image"].shape == (1, 1, 8, 8)


def test_image_folder_refuses_images_over_max_pixels(tmp_path):
    big = _png(tmp_path / "big.png", size=(100, 100))
    _png(tmp_path / "small.png", size=(10, 10))
    cfg = FolderConfig(
        name="image_folder", path=str(tmp_path), image_size=8, max_pixels=1000, test_fraction=0.0
    )
    with pytest.warns(UserWarning, match="max_pixels") as record:
        ds = load_dataset(cfg)
    assert len(ds) == 1 and len(_warnings_naming(record, big)) == 1


def test_image_folder_split_is_a_stable_partition(tmp_path):
    for i in range(40):
        _png(tmp_path / f"{i:02d}.png", size=(8, 8), color=(i, i, i))
    cfg = FolderConfig(name="image_folder", path=str(tmp_path), image_size=8, test_fraction=0.3)
    train, test = load_dataset(cfg), load_dataset(cfg, "test")
    assert len(train) + len(test) == 40 and 4 <= len(test) <= 20
    seen = sorted(train["image"][:, 0, 0, 0].tolist() + test["image"][:, 0, 0, 0].tolist())
    assert seen == list(range(40))
    assert torch.equal(load_dataset(cfg, "test")["image"], test["image"])


def test_image_folder_empty_or_unreadable_is_a_data_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=re.escape(str(empty))):
        load_dataset(FolderConfig(name="image_folder", path=str(empty)))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_text("not really")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no readable images"):
        load_dataset(FolderConfig(name="image_folder", path=str(junk), test_fraction=0.0))
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(FolderConfig(name="image_folder", path=str(tmp_path / "nope")))


# ----------------------------------------------------------------------------- toy mixtures


def test_toy_modes_match_the_protocol():
    ring, sigma = mixture_modes("ring")
    assert ring.shape == (8, 2) and sigma == 0.02
    assert np.allclose(np.linalg.norm(ring, axis=1), 2.0)
    grid, sigma = mixture_modes("toy_grid")
    assert grid.shape == (25, 2) and sigma == 0.05
    assert sorted(set(grid.ravel().tolist())) == [-4, -2, 0, 2, 4]


@pytest.mark.parametrize("cfg", [RingConfig(name="toy_ring"), GridConfig(name="toy_grid")])
def test_toy_points_come_from_their_labelled_mode(cfg):
    ds = load_dataset(dataclasses.replace(cfg, n_train=20000))
    centers, sigma = mixture_modes(cfg)
    assert ds["points"].dtype == torch.float32 and ds["points"].shape == (20000, 2)
    assert ds["label"].dtype == torch.int64 and ds.spec["label"].num_classes == len(centers)
    distance = np.linalg.norm(ds["points"].numpy() - centers[ds["label"].numpy()], axis=1)
    assert distance.max() < 6 * sigma
    share = np.bincount(ds["label"].numpy(), minlength=len(centers)) / len(ds)
    assert np.allclose(share, 1 / len(centers), atol=0.015)
    again = load_dataset(dataclasses.replace(cfg, n_train=20000))
    assert torch.equal(ds["points"], again["points"])
    assert not torch.equal(load_dataset(dataclasses.replace(cfg, n_train=20000, seed=1))["points"], ds["points"])


def test_toy_1d_density_is_exact_and_matches_samples():
    cfg = Mixture1DConfig(
        name="toy_mixture_1d", means=(-2.0, 3.0), stds=(0.5, 1.0), weights=(1.0, 3.0)
    )
    grid = np.linspace(-8, 10, 18001)
    density = density_1d(cfg, grid)
    assert density.shape == grid.shape and density.dtype == np.float64
    assert density.sum() * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-6)
    at_3 = (0.75 + 0.25 * 2 * np.exp(-50)) / np.sqrt(2 * np.pi)  # both components at x = 3
    assert density_1d(cfg, np.array(3.0)) == pytest.approx(at_3, rel=1e-12)
    ds = load_dataset(dataclasses.replace(cfg, n_train=50000))
    assert ds["points"].shape == (50000, 1) and ds.spec["label"].num_classes == 2
    assert (ds["label"] == 1).float().mean().item() == pytest.approx(0.75, abs=0.01)
    hist, edges = np.histogram(ds["points"].numpy()[:, 0], bins=60, range=(-5, 7), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    assert np.abs(hist - density_1d(cfg, centres)).max() < 0.03
    gaussian = _build(DataConfig, {"name": "toy_gaussian_1d", "mean": 1, "std": 2}, "data.", "test")
    assert density_1d(gaussian, np.array([1.0]))[0] == pytest.approx(1 / (2 * np.sqrt(2 * np.pi)))


def test_mnist_m_blends_each_mnist_digit_over_a_photo_crop(mnist_root):
    """Ganin et al.'s construction: |crop - digit| per channel; the digit and its label are MNIST's."""
    from genlab.data.mnist_m import MNISTMConfig, blend

    digits = torch.tensor([[[[0, 255], [128, 0]]]], dtype=torch.uint8)
    background = torch.tensor([[[[10, 10], [200, 255]]] * 3], dtype=torch.uint8).view(1, 3, 2, 2)
    assert blend(digits, background)[0, 0].tolist() == [[10, 245], [72, 255]]

    def build(**keys):
        return load_dataset(MNISTMConfig(name="mnist_m", root=str(mnist_root), limit=64, **keys))

    mnist, colour = load_dataset(StandardConfig(name="mnist", root=str(mnist_root), limit=64)), build()
    assert torch.equal(colour["label"], mnist["label"]) and colour["image"].shape == (64, 3, 28, 28)
    assert colour["image"].float().std() > 30  # photos, not MNIST's black background
    assert not torch.equal(build(seed=1)["image"], colour["image"])  # the seed picks the crops
    grey = build(channels=1)["image"]
    luma = (colour["image"].float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert grey.shape == (64, 1, 28, 28) and (grey.float() - luma).abs().max() <= 0.5 + 1e-4
