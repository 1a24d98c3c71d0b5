"""genlab translate RUN INPUT -o OUT [--seed S] [--direction AtoB|BtoA]: translate images with a trained
image-to-image run (pix2pix, CycleGAN).

INPUT is one image file or a folder of them (its files, not its sub-folders). Each image
is converted to the model's source channels (grey or RGB) and, where its size differs,
resized with PIL (bicubic, stretched when the aspect ratio differs; a message says so).
Each translation is written as OUT/<input name>.png. The same --seed gives every image the
same dropout noise, whichever other images are translated with it.

--direction picks the way a run that translates both ways (CycleGAN) is used: AtoB (the
default) with its export G_AB, BtoA with its G_BA. pix2pix translates its source to its
target only (AtoB); train with data.direction=BtoA for the other way.

A run trained on a ``paired_folder`` (pix2pix's A|B layout) reads a folder INPUT the same way:
each file's source half (or A/ and B/ files matched by name) as its data config says, and INPUT
may also name a split of the run's own data.path (train, test, val). Each OUT/<name>.png is then
source | translation | target, as pix2pix's test script writes them, and the L1 error and
sharpness against the targets are printed.

--rollout N feeds each translation back in N times (a next-frame model played forward)
and writes OUT/<input name>-rollout.png (a strip: the input, then frames 1..N) and .gif.

Images are decoded as genlab's image folders are (16-bit grey kept, transparency composited
onto white, files over PIL's MAX_IMAGE_PIXELS refused from their header). A file that is not
a readable image gets one message on stderr and the rest go on; the exit code is 0 if any
image was translated, 2 if none was.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

from genlab.api import load
from genlab.cli.common import device_name, seed
from genlab.data.folder import open_image, unusable_reason
from genlab.data.paired_folder import PairedFolderConfig, read_pairs, split_folder
from genlab.errors import ConfigError
from genlab.images import fit_image, save_gif, save_grid, save_strip, to_model, to_uint8
from genlab.metrics.image_quality import l1_error, sharpness_ratio
from genlab.models.protocols import REVERSE_ROLE, Translator
from genlab.runs.folder import read_run
from genlab.training.objectives.snapshots import side_by_side

MAX_ROLLOUT = 1000  # frames; each is kept in memory for the strip and the GIF
# --direction -> the role genlab.load builds (None: the run's export)
DIRECTIONS: dict[str, str | None] = {"AtoB": None, "BtoA": REVERSE_ROLE}
SPLITS = {"train": "train", "test": "test", "val": "test"}  # a split named as INPUT -> paired_folder's split


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "translate",
        help="translate images with an image-to-image run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run folder of an image-to-image model, e.g. runs/00000-facades-pix2pix")
    p.add_argument("input", help="an image file (PNG, JPEG, ...) or a folder of them")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="folder to write the translated PNGs into")
    p.add_argument("--seed", type=seed, default=0, help="seed of the model's noise (pix2pix: its dropout)")
    p.add_argument(
        "--direction",
        choices=sorted(DIRECTIONS),
        default="AtoB",
        help="AtoB: the run's export; BtoA: a CycleGAN's B -> A generator (G_BA)",
    )
    p.add_argument(
        "--rollout",
        type=int,
        default=0,
        metavar="N",
        help="feed the output back in N times and write a strip PNG and a GIF (next-frame models)",
    )
    p.add_argument("--device", default="cpu", type=device_name)
    p.set_defaults(func=run)


def load_translator(run_dir: str, device: str, direction: str = "AtoB") -> Translator:
    """The run's translator for ``direction``, which must translate images: the export for
    AtoB, the module of role ``DIRECTIONS[direction]`` otherwise (built alone by genlab.load)."""
    role = DIRECTIONS[direction]
    try:
        model = load(run_dir, device=device, role=role)
    except ConfigError as err:
        if role is None:
            raise
        raise ConfigError(
            f"{err}. --direction {direction} needs a run that translates both ways (a CycleGAN's "
            f"{role}); a pix2pix run translates AtoB only: train one with data.direction=BtoA"
        ) from None
    if not isinstance(model, Translator):
        raise ConfigError(
            f"{run_dir} exports a {type(model).__name__}, which does not translate images; "
            "train an image-to-image model (e.g. model.name=pix2pix) or use genlab sample"
        )
    return model


def input_files(path: Path) -> list[Path]:
    """``path`` itself, or the visible files of the folder ``path`` in sorted order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"input {path} is neither an image file nor a folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ConfigError(f"input folder {path} holds no files; put PNG or JPEG images in it")
    return files


def read_image(path: Path, shape: tuple[int, int, int]) -> tuple[torch.Tensor, str | None]:
    """uint8 [C, H, W] of ``shape`` from an image file, and a note when it had to be resized."""
    image = open_image(path, "L" if shape[0] == 1 else "RGB", Image.MAX_IMAGE_PIXELS or sys.maxsize)
    return fit_image(image, shape, path.name)


def rollout(
    model: Translator, first: torch.Tensor, steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``first`` [1, C, H, W] in [-1, 1] and ``steps`` frames after it, each the translation of the one
    before: ``[steps + 1, C, H, W]``. Needs a model whose source and target have the same shape."""
    if tuple(model.source_shape) != tuple(model.target_shape):
        raise ConfigError(
            f"--rollout feeds outputs back as inputs, but this model maps {tuple(model.source_shape)} "
            f"to {tuple(model.target_shape)}; use a next-frame model (configs/pix2pix_next_frame.yaml)"
        )
    frames = [first]
    for _ in range(steps):
        frames.append(model.translate(frames[-1], generator=generator))
    return torch.cat(frames)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.rollout <= MAX_ROLLOUT:
        raise ConfigError(f"--rollout is a number of frames in 0..{MAX_ROLLOUT}; got {args.rollout}")
    pairs = paired_input(args.run, args.input)
    if pairs is not None and not args.rollout:
        return translate_pairs(load_translator(args.run, args.device, args.direction), pairs, args)
    files = input_files(Path(args.input))
    model = load_translator(args.run, args.device, args.direction)
    out_dir = Path(args.output)
    written: dict[Path, Path] = {}
    for path in files:
        target = out_dir / f"{path.stem}.png"
        if target in written:
            _skip(path, f"its translation {target} would overwrite that of {written[target].name}; rename one")
            continue
        if target.resolve() == path.resolve():
            _skip(path, f"its translation would overwrite it; pass another -o than {out_dir}")
            continue
        try:
            image, note = read_image(path, model.source_shape)
        # Broken files make decoders raise almost anything (OSError, SyntaxError, struct.error, ...).
        except Exception as err:
            _skip(path, unusable_reason(err))
            continue
        if note:
            print(f"genlab translate: {note}", file=sys.stderr)
        generator = torch.Generator().manual_seed(args.seed)
        if args.rollout:
            frames = rollout(model, to_model(image[None]), args.rollout, generator)
            save_strip(frames, out_dir / f"{path.stem}-rollout.png")
            save_gif(frames, out_dir / f"{path.stem}-rollout.gif", bounce=False)
            output = frames[1:2]
        else:
            output = model.translate(to_model(image[None]), generator=generator)
        save_grid(output, target, nrow=1)  # a grid of one image is the image itself, unpadded
        written[target] = path
    if not written:
        print(f"genlab translate: no image translated (of {len(files)} input files)", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} translation{'s' * (len(written) != 1)} to {out_dir}")
    return 0


def _skip(path: Path, reason: str) -> None:
    print(f"genlab translate: skipping {path}: {reason}", file=sys.stderr)


def paired_input(run_dir: str, given: str) -> tuple[Path, PairedFolderConfig] | None:
    """The split folder to read as pairs and the run's data config, when the run trained on a paired_folder and
    ``given`` is a folder or one of its data's splits by name; else None (images are translated one by one)."""
    _, config, _ = read_run(run_dir)
    if not isinstance(config.data, PairedFolderConfig):
        return None
    path = Path(given)
    if not path.exists() and given in SPLITS:
        return split_folder(Path(config.data.path).expanduser(), SPLITS[given]), config.data
    return (path, config.data) if path.is_dir() else None


def translate_pairs(model: Translator, pairs: tuple[Path, PairedFolderConfig], args: argparse.Namespace) -> int:
    """Translate every pair's source; write source | translation | target for each, print L1 and sharpness."""
    folder, data = pairs
    source, target, names = read_pairs(folder, data)
    if tuple(source.shape[1:]) != tuple(model.source_shape):
        raise ConfigError(
            f"{folder}'s pairs read as {tuple(source.shape[1:])} but the model takes {tuple(model.source_shape)}"
        )
    out_dir = Path(args.output)
    outputs = []
    for name, a, b in zip(names, source, target, strict=True):
        # one image at a time, each with the same noise: --seed gives an image the same output in any company
        given = to_model(a[None])
        output = model.translate(given, generator=torch.Generator().manual_seed(args.seed))
        grid = side_by_side(given, output, to_model(b[None]))
        save_grid(grid.images, out_dir / f"{name}.png", nrow=grid.nrow)
        outputs.append(to_uint8(output))
    translated = torch.cat(outputs)
    l1, sharp = l1_error(translated, target), sharpness_ratio(translated, target)
    print(f"wrote {len(names)} source | translation | target triples to {out_dir}")
    print(
        f"against the targets: L1 {l1:.4f} (mean |output - target| in [0, 1] units), sharpness {sharp:.3f} "
        "of the targets' (1 = as sharp)"
    )
    return 0
