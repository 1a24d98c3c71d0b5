"""Users' image files, broken or unusual: each is converted or refused with one message naming it, never a
traceback, and the other files are still read (image_folder, paired_folder, genlab translate)."""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from genlab.cli.main import main
from genlab.data import load_dataset
from genlab.data.folder import FolderConfig
from genlab.data.paired_folder import PairedFolderConfig

from .conftest import fuzz_examples

pytestmark = pytest.mark.reliability

RED = (200, 30, 60)


def encoded(image: Image.Image, format: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **save)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with (almost) no pixel data: a bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def half_transparent(mode: str, size: tuple[int, int]) -> Image.Image:
    """Left half transparent (hiding black), right half opaque RED (or grey 100 for LA)."""
    w, h = size
    if mode == "LA":
        grey = np.zeros((h, w, 2), np.uint8)
        grey[:, w // 2:] = (100, 255)
        return Image.fromarray(grey, "LA")
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, w // 2:] = RED
    palette = Image.fromarray(rgb).quantize(2)  # index of black, index of red
    black = int(np.asarray(palette)[0, 0])
    palette.info["transparency"] = bytes(255 * (i != black) for i in range(2))  # per-index alpha: PIL's warning case
    return palette


def user_files(folder: Path, size: tuple[int, int] = (16, 16)) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every kind of file a user may hand over; returns (converted: name -> path, refused: path -> reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    solid = Image.new("RGB", size, RED)
    png, jpeg = encoded(solid, "PNG"), encoded(solid, "JPEG", quality=95)
    noisy = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)), "PNG")
    converted = {
        "a-plain.png": png,
        "b-png-named.jpg": png,  # wrong extension: decoded by content
        "c-cmyk.jpg": encoded(solid.convert("CMYK"), "JPEG", quality=95),
        "d-16-bit.png": encoded(Image.fromarray(np.full(size[::-1], 40000, np.uint16)), "PNG"),  # mode I;16
        "e-palette-alpha.png": encoded(half_transparent("P", size), "PNG"),
        "f-la.png": encoded(half_transparent("LA", size), "PNG"),
    }
    refused = {
        "g-truncated.png": (noisy[: len(noisy) // 2], "not a readable image (OSError: image file is truncated"),
        "h-truncated.jpg": (jpeg[: len(jpeg) // 2], "not a readable image (OSError: "),
        "i-zero-bytes.png": (b"", "not a readable image (UnidentifiedImageError: cannot identify image file"),
        "j-text-named.png": (b"a text file, not an image\n", "not a readable image (UnidentifiedImageError"),
        "k-bomb.png": (png_header_claiming(100_000, 100_000),
                       "the header claims over 178956970 pixels, twice PIL.Image.MAX_IMAGE_PIXELS (possible decompression bomb)"),
        "l-over-max-pixels.png": (png_header_claiming(10_000, 10_000),
                                  "10000x10000 pixels is over max_pixels=89478485 (possible decompression bomb)"),
    }
    for name, data in converted.items():
        (folder / name).write_bytes(data)
    for name, (data, _) in refused.items():
        (folder / name).write_bytes(data)
    return ({name: folder / name for name in converted}, {folder / name: reason for name, (_, reason) in refused.items()})


def check_converted(images: np.ndarray, names: list[str]) -> None:
    """uint8 [N, C, H, W] decoded from the ``converted`` files, in their sorted order."""
    channels = images.shape[1]
    grey_red = round(0.299 * RED[0] + 0.587 * RED[1] + 0.114 * RED[2])
    red = np.array(RED if channels == 3 else (grey_red,))[:, None, None]
    width = images.shape[3]
    left, right = images[..., : width // 2 - 2], images[..., width // 2 + 2:]  # clear of the resampled edge
    for name, image, l, r in zip(names, images, left, right):
        if name in ("a-plain.png", "b-png-named.jpg"):
            assert np.abs(image.astype(int) - red).max() <= 2, name
        elif name == "c-cmyk.jpg":
            assert np.abs(image.astype(int) - red).max() <= 10, name  # JPEG's loss
        elif name == "d-16-bit.png":
            assert (image == 40000 >> 8).all(), name  # the high byte; convert() alone gives 255
        elif name == "e-palette-alpha.png":
            assert (l == 255).all() and np.abs(r.astype(int) - red).max() <= 2, name  # transparent -> white
        elif name == "f-la.png":
            assert (l == 255).all() and (r == 100).all(), name


def recorded(action):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = action()
    return result, [str(w.message) for w in record]


def assert_each_refused_once(messages: list[str], refused: dict[Path, str], prefix: str) -> None:
    for path, reason in refused.items():
        naming = [m for m in messages if f"{prefix}skipping {path}: " in m]
        assert len(naming) == 1 and reason in naming[0], (path, naming)
    assert len(messages) == len(refused), messages  # nothing else: no PIL warning, no second line


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
def test_image_folder_converts_or_refuses_each_file_by_name(tmp_path, channels):
    converted, refused = user_files(tmp_path / "photos")
    cfg = FolderConfig(name="image_folder", path=str(tmp_path / "photos"), image_size=16, channels=channels, test_fraction=0)
    data, messages = recorded(lambda: load_dataset(cfg))
    assert_each_refused_once(messages, refused, "image_folder: ")
    assert data["image"].shape == (len(converted), channels, 16, 16)
    check_converted(data["image"].numpy(), sorted(converted))


def test_paired_folder_converts_or_refuses_each_file_by_name(tmp_path):
    converted, refused = user_files(tmp_path / "pairs" / "train", size=(32, 16))  # A | B side by side
    cfg = PairedFolderConfig(name="paired_folder", path=str(tmp_path / "pairs"), image_size=16)
    data, messages = recorded(lambda: load_dataset(cfg))
    assert_each_refused_once(messages, refused, "paired_folder: ")
    assert data["source"].shape == data["target"].shape == (len(converted), 3, 16, 16)
    assert (data["source"][3] == 40000 >> 8).all()  # d-16-bit.png, both halves
    # palette-alpha and LA: the A half is the transparent one (white), the B half opaque
    assert (data["source"][4:] == 255).all() and (data["target"][5] == 100).all()


def test_paired_folder_a_b_folders_skip_a_pair_with_one_bad_half(tmp_path):
    converted, refused = user_files(tmp_path / "pairs" / "train" / "A")
    for path in (*converted.values(), *refused):
        (tmp_path / "pairs" / "train" / "B").mkdir(exist_ok=True)
        (tmp_path / "pairs" / "train" / "B" / path.name).write_bytes(converted["a-plain.png"].read_bytes())
    cfg = PairedFolderConfig(name="paired_folder", path=str(tmp_path / "pairs"), image_size=16)
    data, messages = recorded(lambda: load_dataset(cfg))
    assert_each_refused_once(messages, refused, "paired_folder: ")
    assert len(data) == len(converted)


def test_translate_converts_or_refuses_each_input_by_name(translator, tmp_path, capsys):
    converted, refused = user_files(tmp_path / "inputs")
    code, messages = recorded(lambda: main(["translate", str(translator), str(tmp_path / "inputs"), "-o", str(tmp_path / "out")]))
    assert code == 0 and not messages  # no Python warning either
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "skipping" in line]
    assert_each_refused_once(lines, refused, "genlab translate: ")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(Path(n).stem + ".png" for n in converted)


# ----------------------------------------------------------------------------- fuzzing

FORMATS = {"PNG": ("L", "RGB", "RGBA", "LA", "P", "I;16", "1"), "JPEG": ("L", "RGB", "CMYK"),
           "GIF": ("L", "P"), "BMP": ("L", "RGB", "P"), "WEBP": ("RGB", "RGBA"), "TIFF": ("L", "RGB", "CMYK", "I;16")}


def in_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "P":
        return image.quantize(16)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    return image.convert(mode)


@st.composite
def damaged_files(draw) -> bytes:
    """An encoded image of a random format, mode and size, then truncated, bit-flipped or left whole."""
    format = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[format]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pixels = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = bytearray(encoded(in_mode(Image.fromarray(pixels), mode), format))
    damage = draw(st.sampled_from(["whole", "truncated", "flipped", "zeroed tail"]))
    at = draw(st.integers(0, len(data) - 1))
    if damage == "truncated":
        data = data[:at]
    elif damage == "flipped":
        for offset in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[offset] ^= draw(st.integers(1, 255))
    elif damage == "zeroed tail":
        data[at:] = bytes(len(data) - at)
    return bytes(data)


@fuzz_examples(200)
@given(data=damaged_files(), name=st.sampled_from(["x.png", "x.jpg", "x.gif", "x.bmp", "x.webp", "x.tif", "x"]),
       channels=st.sampled_from([1, 3]))
def test_fuzzed_files_are_read_or_skipped_by_name_and_the_others_still_read(tmp_path, data, name, channels):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: tmp_path is shared by them all
    (folder / "a-good.png").write_bytes(encoded(Image.new("RGB", (16, 16), RED), "PNG"))
    (folder / name).write_bytes(data)
    cfg = FolderConfig(name="image_folder", path=str(folder), image_size=8, channels=channels, test_fraction=0,
                       max_pixels=100_000)  # a damaged header may claim anything: keep the work bounded
    dataset, messages = recorded(lambda: load_dataset(cfg))
    assert dataset["image"].shape[1:] == (channels, 8, 8) and len(dataset) in (1, 2)
    # read, or refused in one message naming it; every message names it (PIL's own warnings do not)
    assert all(str(folder / name) in m for m in messages), messages
    event("refused" if len(dataset) == 1 else "read with a warning naming it" if messages else "read")
    if len(dataset) == 1:
        assert len(messages) == 1 and f"image_folder: skipping {folder / name}: " in messages[0], messages
