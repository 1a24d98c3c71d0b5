"""MNIST, Fashion-MNIST and CIFAR-10 through one path: find or fetch files, parse, adapt.

Files use torchvision's layout under a data root (``<root>/MNIST/raw/*.gz``,
``<root>/FashionMNIST/raw/*.gz``, ``<root>/cifar-10-batches-bin/*.bin`` or the tar next
to it) and are parsed directly: idx files with gzip + numpy, CIFAR-10 from its binary
release so that nothing is ever unpickled. A whole split is loaded once per process.

The root is ``cfg.root``, else ``$GENLAB_DATA``, else ``~/.cache/genlab/data``. Only that
last one, our own cache, is ever written to: a folder the user chose is read-only to us.
"""

from __future__ import annotations

import functools
import gzip
import http.client
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.config import EXAMPLE_FILES, DataConfig, Range, at_least, one_of
from genlab.data.base import Classes, Image, Spec, TensorDataset
from genlab.download import download
from genlab.errors import DataError
from genlab.registry import register_dataset

DATA_ENV = "GENLAB_DATA"
_TIMEOUT_S = 30  # per network read while downloading
_RESIZE_CHUNK = 8192  # images resized per call: bounds the float copy's memory


@dataclass
class StandardConfig(DataConfig):
    """Keys shared by ``mnist``, ``fashion_mnist`` and ``cifar10``."""

    root: str | None = None  # data root; None: $GENLAB_DATA, then ~/.cache/genlab/data
    download: bool = True  # fetch missing files, into ~/.cache/genlab/data only
    image_size: int = 0  # 0 keeps the native size; else resize (antialiased) to image_size²
    channels: int = 0  # 0 keeps native channels; 1 = grey, 3 = RGB (grey is replicated)
    limit: int = 0  # 0 loads the whole split; else only its first `limit` images
    # Binarised once, each pixel white with probability intensity / 255 from a fixed seed per split
    # (Salakhutdinov & Murray 2008's binarised MNIST, the benchmark of PixelCNN and IWAE likelihoods).
    binarize: bool = False

    bounds: ClassVar[dict[str, Range]] = {
        "image_size": at_least(0, "0 keeps the native size"),
        "channels": one_of(0, 1, 3, note="0 keeps native channels"),
        "limit": at_least(0, "0 loads the whole split"),
    }
    example: ClassVar[dict] = {"root": EXAMPLE_FILES, "limit": 64}


@dataclass(frozen=True)
class Resource:
    """A file fetched as-is: its name, where to find it and its official md5."""

    filename: str
    md5: str
    urls: tuple[str, ...]  # mirrors, tried in order


@dataclass(frozen=True)
class Source:
    """Everything that differs between the standard sets, as data."""

    folder: str  # directory under the root holding the files a split reads
    split_files: dict[str, tuple[str, ...]]  # split -> files its reader takes, in order
    split_sizes: dict[str, int]  # split -> number of examples, to catch a wrong file
    downloads: tuple[Resource, ...]  # what to fetch when files are missing
    archive: str | None  # a downloaded tar whose members are the split files, if any
    reader: Callable[[list[bytes], list[str]], tuple[np.ndarray, np.ndarray]]
    classes: tuple[str, ...]


# ----------------------------------------------------------------------------- parsers


def _read_idx(blobs: list[bytes], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """gzipped idx images + labels -> uint8 [N, 1, H, W], uint8 [N]."""
    images = _idx_array(blobs[0], names[0], magic=2051, dims=3)
    labels = _idx_array(blobs[1], names[1], magic=2049, dims=1)
    if len(images) != len(labels):
        raise DataError(f"{names[0]} holds {len(images)} images but {names[1]} {len(labels)} labels")
    return images[:, None], labels


def _idx_array(blob: bytes, name: str, magic: int, dims: int) -> np.ndarray:
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{name} is not a valid gzip file ({err})") from None
    header = 4 * (1 + dims)
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{name} is not an idx file of the expected kind (magic number {magic} missing)")
    shape = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(1, dims + 1))
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{name} is truncated: header says {shape} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


_CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte, then R, G and B planes of 32x32


def _read_cifar_bin(blobs: list[bytes], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary batches -> uint8 [N, 3, 32, 32], uint8 [N]."""
    for blob, name in zip(blobs, names, strict=True):
        if len(blob) % _CIFAR_RECORD:
            raise DataError(f"{name} is not a CIFAR-10 binary batch ({len(blob)} bytes)")
    records = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


# ----------------------------------------------------------------------------- sources


def _idx_source(folder: str, mirrors: tuple[str, ...], md5s: dict[str, str], classes: tuple[str, ...]) -> Source:
    return Source(
        folder=folder,
        split_files={
            "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        },
        split_sizes={"train": 60000, "test": 10000},
        downloads=tuple(Resource(f, md5, tuple(m + f for m in mirrors)) for f, md5 in md5s.items()),
        archive=None,
        reader=_read_idx,
        classes=classes,
    )


# Files, mirrors and md5s as torchvision lists them (CIFAR-10: the binary release).
SOURCES: dict[str, Source] = {
    "mnist": _idx_source(
        "MNIST/raw",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        tuple(str(d) for d in range(10)),
    ),
    "fashion_mnist": _idx_source(
        "FashionMNIST/raw",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "cifar10": Source(
        folder="cifar-10-batches-bin",
        split_files={
            "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            "test": ("test_batch.bin",),
        },
        split_sizes={"train": 50000, "test": 10000},
        downloads=(
            Resource(
                "cifar-10-binary.tar.gz",
                "c32a1d4ab5d03f1284b67883e8d87530",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
            ),
        ),
        archive="cifar-10-binary.tar.gz",
        reader=_read_cifar_bin,
        classes=tuple(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]),
    ),
}


# ----------------------------------------------------------------------------- building


def build(cfg: StandardConfig, split: str) -> TensorDataset:
    """Load a split: ``image`` uint8 [N, C, H, W], ``label`` int64 [N] in 0..9."""
    source = SOURCES[cfg.name]
    root, ours = resolve_root(cfg.root)
    images, labels = _load_adapted(
        cfg.name, str(root), ours and cfg.download, split, cfg.limit, cfg.image_size, cfg.channels
    )
    if cfg.binarize:
        images = binarized(images, split)
    spec: Spec = {"image": Image(*images.shape[1:]), "label": Classes(tuple(source.classes))}
    return TensorDataset(cfg.name, spec, {"image": images, "label": labels})


BINARIZE_SEEDS = {"train": 0, "test": 1}


def binarized(images: Tensor, split: str) -> Tensor:
    """uint8 images -> 0 or 255, each pixel 255 with probability value / 255. The draw is fixed per split
    and in the images' order, so the first ``limit`` images binarise as in the whole split."""
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(BINARIZE_SEEDS[split]))
    return (u * 255 < images.float()).to(torch.uint8) * 255


for _name in SOURCES:
    register_dataset(_name, StandardConfig)(build)


def default_root() -> Path:
    """Our own download cache, the only data folder genlab writes to."""
    return Path.home() / ".cache" / "genlab" / "data"


def resolve_root(root: str | None) -> tuple[Path, bool]:
    """The data root to use and whether it is our own cache (and so writable by us)."""
    chosen = root or os.environ.get(DATA_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve(), False
    return default_root().resolve(), True


# Both caches make a second load in the same process free (the resized copy costs about a
# second for MNIST). Their tensors are shared between callers: datasets are read-only.
@functools.lru_cache(maxsize=8)
def _load_adapted(
    name: str, root: str, may_download: bool, split: str, limit: int, image_size: int, channels: int
) -> tuple[Tensor, Tensor]:
    images, labels = _load_split(name, root, may_download, split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return _adapt(images, image_size, channels), labels


@functools.lru_cache(maxsize=8)
def _load_split(name: str, root: str, may_download: bool, split: str) -> tuple[Tensor, Tensor]:
    source = SOURCES[name]
    names = list(source.split_files[split])
    blobs, shown = _read_files(name, source, Path(root), names, may_download)
    try:
        images, labels = source.reader(blobs, shown)
        expected = source.split_sizes[split]
        if len(images) != expected:
            raise DataError(f"{' + '.join(shown)} hold {len(images)} examples, not the {expected} of the {split} split")
        if labels.max(initial=0) >= len(source.classes):
            raise DataError(f"{shown[-1]} has labels beyond the {len(source.classes)} classes")
    except DataError as err:
        again = " (or delete it so that it is downloaded again)" if may_download else ""
        raise DataError(f"{name}: {err}. Replace it with the official file{again}.") from None
    # np.require copies only when needed: frombuffer arrays are read-only, torch wants writable.
    images = np.require(images, requirements=["C", "W"])
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _read_files(
    name: str, source: Source, root: Path, names: list[str], may_download: bool
) -> tuple[list[bytes], list[str]]:
    """Bytes of each named file (from the folder, the archive or a download) and their origins."""
    folder = root / source.folder
    archive = root / source.archive if source.archive else None
    if not all((folder / n).is_file() for n in names) and not (archive and archive.is_file()):
        if not may_download:
            raise DataError(_missing_message(name, source, root, names))
        _download(name, source, root, names)
    if all((folder / n).is_file() for n in names):
        return [(folder / n).read_bytes() for n in names], [str(folder / n) for n in names]
    members = [f"{source.folder}/{n}" for n in names]
    assert archive is not None  # the files are not all in the folder, so the archive is there
    return _read_members(archive, members), [f"{archive}:{m}" for m in members]


def _read_members(archive: Path, members: list[str]) -> list[bytes]:
    """Read files out of a tar without extracting it (the user's folder stays untouched)."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                if info.name in members and info.isfile():
                    member = tar.extractfile(info)
                    assert member is not None  # a regular file always has a reader
                    found[info.name] = member.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive} is not a readable tar archive ({err}); replace it with the official one") from None
    missing = [m for m in members if m not in found]
    if missing:
        raise DataError(f"{archive} lacks {', '.join(missing)}; it is not the official archive")
    return [found[m] for m in members]


def _missing_message(name: str, source: Source, root: Path, names: list[str]) -> str:
    folder = root / source.folder
    wanted = f"{', '.join(names)} in {folder}"
    if source.archive:
        wanted += f" (or {source.archive} in {root})"
    urls = " or ".join(sorted({r.urls[0].rsplit("/", 1)[0] + "/" for r in source.downloads}))
    return (
        f"{name}: missing {wanted}. genlab downloads only into its own cache {default_root()}; "
        f"it does not write into a data root you chose. Fix: point --data-root / ${DATA_ENV} at a "
        f"folder that has these files, put them there yourself (from {urls}), or unset both "
        f"(and keep data.download=true) so they are downloaded to the cache."
    )


def _download(name: str, source: Source, root: Path, names: list[str]) -> None:
    """Fetch the source's files into our cache, verified by md5, never leaving a partial file."""
    target = root if source.archive else root / source.folder
    target.mkdir(parents=True, exist_ok=True)
    for resource in source.downloads:
        path = target / resource.filename
        if path.is_file():
            continue
        errors = []
        for url in resource.urls:
            try:
                _fetch(url, path, resource.md5)
                break
            # URLError and timeouts are OSErrors; a bad md5 is a ValueError.
            except (OSError, ValueError, http.client.HTTPException) as err:
                errors.append(f"{url}: {err}")
        else:
            raise DataError(
                f"{name}: could not download {resource.filename} ({'; '.join(errors)}). "
                f"Expected {', '.join(names)} in {root / source.folder}. If this machine is "
                f"offline, copy the files there from a machine that is online, or set "
                f"--data-root / ${DATA_ENV} to a folder that has them."
            )
    if source.archive:
        _extract(root / source.archive, root, [f"{source.folder}/{n}" for n in _all_files(source)])


def _fetch(url: str, path: Path, md5: str) -> None:
    """Download url to path, verified by its official md5 (a DownloadError, an OSError, if not)."""
    download(url, path, md5=md5, timeout_s=_TIMEOUT_S)


def _extract(archive: Path, root: Path, members: list[str]) -> None:
    """Unpack the named members only (no path from the archive is trusted), each atomically."""
    for member, blob in zip(members, _read_members(archive, members), strict=True):
        path = root / member
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _all_files(source: Source) -> list[str]:
    return [n for names in source.split_files.values() for n in names]


def _adapt(images: Tensor, image_size: int, channels: int) -> Tensor:
    """Resize (antialiased) and convert channels: uint8 [N, C, H, W] -> uint8 [N, C', S, S]."""
    if channels == 1 and images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601, as PIL's "L"
        images = (images.float() * weights).sum(1, keepdim=True).round_().to(torch.uint8)
    if image_size and images.shape[-2:] != (image_size, image_size):
        # Antialiasing only changes downsampling, and its kernel is 2.5x slower on upsampling.
        antialias = image_size < min(images.shape[-2:])
        chunks = [
            F.interpolate(chunk.float(), size=(image_size, image_size), mode="bilinear", antialias=antialias)
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
            for chunk in images.split(_RESIZE_CHUNK)
        ]
        images = torch.cat(chunks)
    if channels == 3 and images.shape[1] == 1:  # last, so that resizing works on one channel
        images = images.repeat(1, 3, 1, 1)
    return images
