"""genlab latent TOOL RUN ... -o OUT: walk the latent space of a trained VAE or GAN.

  interpolate  --seeds 1,2[,3...] | --images A.png B.png ...   lerp / slerp strip (.png) or animation (.gif)
  traverse     [--dims 0,3] [--span 3] [--seed S | --image X.png]  one row per latent dimension
  arithmetic   --a TERM --b TERM --c TERM                       a - b + c with averaged terms (DCGAN)
  edit         IMAGE [--set D=V] [--shift D=V] [--attribute NAME]  encode (or --invert), change, decode
  invert       IMAGE...                                          GAN inversion: latents by optimisation
  sweep        [--classes 0,1,...] [-n 8]                        conditional models: each latent as each class
  mix          [--rows 4] [--cols 6] [--crossover L] [--psi P]   style-based models: the style-mixing grid

Latent values and ranges are in prior standard deviations. Images of another size or mode
than the model's are converted (with a note). A model without an encoder (a GAN) finds the
latents of real images by inversion: pass --invert. Conditional models need --class K.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from genlab.api import load
from genlab.cli.common import add_data_root, device_name, with_data_root
from genlab.cli.translate import read_image
from genlab.data import base, load_dataset
from genlab.data.base import class_field, sample_field
from genlab.errors import ConfigError
from genlab.images import save_gif, save_grid, save_strip, to_model
from genlab.latent import arithmetic, attributes, conditional, edit, interpolate, sample, style, traverse
from genlab.latent.encode import encode_dataset
from genlab.models.protocols import Encoder, LatentSampler, is_conditional
from genlab.runs.folder import read_run

MODES = {1: "L", 3: "RGB"}  # the PIL mode the model's channels read


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "latent",
        help="interpolate, traverse, edit and invert in a model's latent space",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tools = p.add_subparsers(dest="tool", required=True, metavar="TOOL")

    q = _tool(tools, "interpolate", "a strip or GIF between seeds or real images", _interpolate, (".png", ".gif"))
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--seeds", type=_ints, metavar="S1,S2,...", help="seeds of the key latents (at least two)")
    source.add_argument("--images", nargs="+", metavar="IMAGE", help="real images whose latents are the keys")
    q.add_argument("--steps", type=int, default=8, help="images per segment, ends included (default: %(default)s)")
    q.add_argument("--method", choices=interpolate.METHODS, help="default: slerp for Gaussian priors, else lerp")
    _inversion_args(q)

    q = _tool(tools, "traverse", "one row per latent dimension, swept in prior standard deviations", _traverse)
    q.add_argument("--dims", type=_ints, metavar="D1,D2,...", help="latent dimensions (default: all)")
    q.add_argument("--span", type=float, default=3.0, help="sweep from -span to +span (default: %(default)s)")
    q.add_argument("--steps", type=int, default=9, help="images per row (default: %(default)s)")
    q.add_argument("--relative", action="store_true", help="offsets from the base latent instead of absolute values")
    q.add_argument("--image", metavar="IMAGE", help="base latent: this image's (default: the --seed's prior draw)")
    _inversion_args(q)

    q = _tool(tools, "arithmetic", "a - b + c, each term the mean of its latents", _arithmetic)
    for term in "abc":
        q.add_argument(
            f"--{term}",
            required=True,
            metavar="TERM",
            help="comma-separated seeds, image files or class:NAME (the mean latent of that class's "
            "training images; models with an encoder)",
        )
    q.add_argument(
        "--jitter", type=float, default=0.25, help="uniform noise of the result's variations (default: %(default)s)"
    )
    _inversion_args(q)
    add_data_root(q)

    q = _tool(tools, "edit", "encode (or invert) an image, change its latent, decode", _edit)
    q.add_argument("image", help="the image to edit")
    q.add_argument(
        "--set",
        dest="set_dims",
        action="append",
        type=_dim_value,
        default=[],
        metavar="D=V",
        help="set latent dimension D to V (repeatable)",
    )
    q.add_argument(
        "--shift",
        dest="shift_dims",
        action="append",
        type=_dim_value,
        default=[],
        metavar="D=V",
        help="add V to latent dimension D (repeatable)",
    )
    q.add_argument(
        "--attribute",
        metavar="NAME",
        help="add an attribute vector from the run's training data: "
        "sprites bigger, rotated, moved_right, moved_down (or a factor); classes A-B",
    )
    q.add_argument(
        "--strength",
        type=_floats,
        default=[1.0],
        metavar="S1,S2,...",
        help="multiples of the attribute vector, one image each (default: 1)",
    )
    _inversion_args(q)
    add_data_root(q)

    q = _tool(tools, "invert", "latents of real images by optimisation (any generator)", _invert)
    q.add_argument("images", nargs="+", metavar="IMAGE", help="images to invert")
    q.add_argument("--json", metavar="PATH", help="also write the errors and latents here")
    _inversion_args(q, flag=False)

    q = _tool(tools, "sweep", "conditional models: each latent (row) as each class (column)", _sweep)
    q.add_argument("--classes", type=_ints, metavar="K1,K2,...", help="classes (default: all)")
    q.add_argument("-n", type=int, default=8, help="latents, one row each (default: %(default)s)")

    q = _tool(
        tools, "mix", "style-based generators: the style-mixing grid (rows' coarse styles, columns' fine ones)", _mix
    )
    q.add_argument("--rows", type=int, default=4, help="latents giving the coarse styles (default: %(default)s)")
    q.add_argument("--cols", type=int, default=6, help="latents giving the fine styles (default: %(default)s)")
    q.add_argument("--crossover", type=int, help="first layer taking the column's style (default: half the layers)")
    q.add_argument("--psi", type=float, default=1.0, help="truncation in W: 1 none, 0 the mean image (default: 1)")


def _tool(tools, name: str, help_text: str, func, suffixes: tuple[str, ...] = (".png",)) -> argparse.ArgumentParser:
    q = tools.add_parser(name, help=help_text, description=help_text)
    q.add_argument("run", help="run folder, e.g. runs/00000-quickstart")
    q.add_argument("-o", "--output", required=True, metavar="OUT", help=f"file to write ({' or '.join(suffixes)})")
    q.add_argument("--seed", type=int, default=0, help="seed of drawn latents and inversion restarts")
    q.add_argument("--truncation", type=float, metavar="T", help="redraw drawn latent values beyond +-T")
    q.add_argument("--class", dest="label", type=int, metavar="K", help="class to decode as (conditional models)")
    q.add_argument(
        "--space",
        choices=("z", "w"),
        default="z",
        help="style-based models: work on w = mapping(z) instead of z (default: z)",
    )
    q.add_argument("--device", default="cpu", type=device_name)
    q.set_defaults(func=func, suffixes=suffixes)
    return q


def _inversion_args(q: argparse.ArgumentParser, flag: bool = True) -> None:
    if flag:
        q.add_argument(
            "--invert",
            action="store_true",
            help="find real images' latents by optimisation (the only way for a GAN; also works for a VAE's decoder)",
        )
    q.add_argument("--invert-steps", type=int, default=300, help="Adam steps per inversion (default: %(default)s)")
    q.add_argument("--restarts", type=int, default=4, help="random starts per image, best kept (default: %(default)s)")
    q.add_argument("--lr", type=float, default=0.1, help="Adam step size on z (default: %(default)s)")


# ----------------------------------------------------------------------------- argument types


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, e.g. 0,3,5; got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.5,1,2; got {text!r}") from None


def _dim_value(text: str) -> tuple[int, float]:
    dim, _, value = text.partition("=")
    try:
        return int(dim), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIM=VALUE, e.g. 3=2.0; got {text!r}") from None


# ----------------------------------------------------------------------------- shared steps


def _model(args: argparse.Namespace):
    if Path(args.output).suffix.lower() not in args.suffixes:
        raise ConfigError(f"-o is the file to write, ending in {' or '.join(args.suffixes)}; got {args.output!r}")
    model = sample.require_sampler(load(args.run, device=args.device))
    if args.space == "w" and args.tool != "mix":  # mix reads both spaces itself
        model = style.WSpace(style.require_style_based(model))
    if args.label is not None or is_conditional(model):
        sample.class_labels(model, args.label, 1)  # a missing or out-of-range --class fails before any work
    return model


def read_images(paths: list[str], shape: tuple[int, int, int]) -> torch.Tensor:
    """Image files as ``[N, C, H, W]`` in [-1, 1] of the model's ``shape``; a note on stderr for each
    one converted to the model's mode (grey / RGB) or resized to its size."""
    channels = shape[0]
    images = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"image {name} does not exist")
        try:
            with Image.open(path) as image:
                mode = image.mode
            pixels, resized = read_image(path, shape)
        # Broken files make decoders raise almost anything (OSError, SyntaxError, DecompressionBombError, ...).
        except Exception as err:
            raise ConfigError(f"{name} is not a readable image ({type(err).__name__}: {err})") from None
        if mode != MODES.get(channels):
            wanted = "grey (L)" if channels == 1 else "RGB"
            _note(f"{path.name} is {mode}; converted to {wanted}, the mode of this model's {channels}-channel images")
        if resized:
            _note(resized)
        images.append(to_model(pixels[None]))
    return torch.cat(images)


def _note(text: str) -> None:
    print(f"genlab latent: note: {text}", file=sys.stderr)


def _real_latents(model, args: argparse.Namespace, paths: list[str]) -> torch.Tensor:
    """The latents ``[N, D]`` of image files: encoded, or inverted with --invert (a note gives the error)."""
    _check_encoder(model, args)
    x = read_images(paths, _image_shape(args))
    found = edit.image_latents(
        model, x, args.label, use_inversion=getattr(args, "invert", True), **_inversion_options(args)
    )
    if getattr(args, "invert", True):
        _note("inversion error (MSE per pixel, [-1, 1] units): " + ", ".join(f"{e:.4g}" for e in found.mse.tolist()))
    return found.z


def _check_encoder(model, args: argparse.Namespace) -> None:
    if not getattr(args, "invert", True) and not isinstance(model, Encoder):
        raise ConfigError(
            f"{args.run} exports a {type(model).__name__}, which has no encoder to give real images "
            "their latents: pass --invert to find them by optimisation (GAN inversion; tune it with "
            "--invert-steps and --restarts)"
        )


def _inversion_options(args: argparse.Namespace) -> dict:
    return {
        "steps": args.invert_steps,
        "restarts": args.restarts,
        "lr": args.lr,
        "generator": torch.Generator().manual_seed(args.seed),
    }


def _image_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """[C, H, W] of the images the run's model was trained on (from its data spec)."""
    _, _, spec = read_run(args.run)
    field = spec[sample_field(spec)]
    assert isinstance(field, base.Image), f"the model's samples are {field}, not images"
    return field.shape


def _train_data(model, args: argparse.Namespace, what: str):
    """The run's training split, for ``what`` (an option that encodes it: the model needs an encoder)."""
    if not isinstance(model, Encoder):
        raise ConfigError(
            f"{what} averages the encoded latents of the run's training images, which needs a model "
            f"with an encoder; a {type(model).__name__} has none: use --set / --shift, or arithmetic "
            "with seeds or inverted images"
        )
    _, config, _ = read_run(args.run)
    return load_dataset(with_data_root(config, args).data, "train")


def _written(what: str, path: Path) -> int:
    print(f"wrote {what} to {path}")
    return 0


# ----------------------------------------------------------------------------- tools


def _interpolate(args: argparse.Namespace) -> int:
    model = _model(args)
    if args.seeds is not None:
        if len(args.seeds) < 2:
            raise ConfigError(f"--seeds needs at least two seeds to interpolate between, e.g. 1,2; got {args.seeds}")
        keys = sample.seed_latents(model, args.seeds, args.truncation)
    else:
        if len(args.images) < 2:
            raise ConfigError("--images needs at least two images to interpolate between")
        keys = _real_latents(model, args, args.images)
    method = args.method or interpolate.default_method(model)
    images = interpolate.interpolate(model, keys, args.steps, method, args.label)
    output = Path(args.output)
    save = save_gif if output.suffix.lower() == ".gif" else save_strip
    return _written(f"a {method} interpolation of {len(images)} images", save(images, output))


def _traverse(args: argparse.Namespace) -> int:
    model = _model(args)
    dims = traverse.check_dims(range(model.latent_dim) if args.dims is None else args.dims, model.latent_dim)
    if args.image:
        z = _real_latents(model, args, [args.image])[0]
    else:
        z = sample.seed_latents(model, [args.seed], args.truncation)[0]
    grid = traverse.traversal(model, z, dims, args.steps, args.span, args.relative, args.label)
    return _written(
        f"a traversal of {len(dims)} dimension(s) from -{args.span:g} to +{args.span:g} sd",
        save_grid(grid.images, args.output, nrow=grid.nrow),
    )


def _arithmetic(args: argparse.Namespace) -> int:
    model = _model(args)
    terms = [_term(model, args, getattr(args, name), name) for name in "abc"]
    a, b, c = terms
    grid = arithmetic.arithmetic_grid(model, a, b, c, label=args.label, jitter=args.jitter, seed=args.seed)
    return _written(
        "a - b + c (rows a, b, c: exemplars and their mean; last row: the result and variations)",
        save_grid(grid.images, args.output, nrow=grid.nrow),
    )


def _term(model, args: argparse.Namespace, text: str, name: str) -> torch.Tensor:
    """Latents ``[n, D]`` of one arithmetic term: seeds, image files and class:NAME items."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"--{name} is empty; give seeds (1,2,3), image files or class:NAME")
    latents = []
    for item in items:
        if item.lstrip("-").isdigit():
            latents.append(sample.seed_latents(model, [int(item)], args.truncation))
        elif item.startswith("class:"):
            latents.append(_class_mean(model, args, item.removeprefix("class:")))
        else:
            latents.append(_real_latents(model, args, [item]))
    return torch.cat(latents)


def _class_mean(model, args: argparse.Namespace, name: str) -> torch.Tensor:
    data = _train_data(model, args, f"class:{name}")
    classes = class_field(data.spec)
    if classes is None:
        raise ConfigError(f"class:{name} needs class labels, and {data.name} has none; use seeds or image files")
    index = attributes.class_index(name, classes.names)
    latents = encode_dataset(model, data, attributes.ATTRIBUTE_IMAGES).cpu()
    return attributes.class_means(latents, data["label"][: len(latents)], classes.num_classes)[index : index + 1]


def _edit(args: argparse.Namespace) -> int:
    model = _model(args)
    _check_encoder(model, args)
    if not (args.set_dims or args.shift_dims or args.attribute):
        raise ConfigError("nothing to edit: give --set D=V, --shift D=V or --attribute NAME")
    direction = None
    if args.attribute:
        direction = attributes.data_attribute(model, _train_data(model, args, "--attribute"), args.attribute)
    x = read_images([args.image], _image_shape(args))
    found = edit.image_latents(model, x, args.label, use_inversion=args.invert, **_inversion_options(args))
    changes = {"set_dims": dict(args.set_dims), "shift_dims": dict(args.shift_dims), "direction": direction}
    strengths = args.strength if direction is not None else [1.0]
    edited = [edit.edit(model, found.z, args.label, strength=s, **changes) for s in strengths]
    row = torch.cat([x.to(found.reconstruction), found.reconstruction, *edited])
    _note(f"reconstruction error (MSE per pixel, [-1, 1] units): {found.mse.item():.4g}")
    return _written(f"input | reconstruction | {len(edited)} edit(s)", save_grid(row, args.output, nrow=len(row)))


def _invert(args: argparse.Namespace) -> int:
    model = _model(args)
    x = read_images(args.images, _image_shape(args))
    start = time.perf_counter()
    found = edit.image_latents(model, x, args.label, use_inversion=True, **_inversion_options(args))
    seconds = time.perf_counter() - start
    for name, error in zip(args.images, found.mse.tolist(), strict=True):
        print(f"{name}: MSE per pixel {error:.4g} ([-1, 1] units)")
    print(f"{seconds / len(x):.2f} s per image ({args.invert_steps} steps x {args.restarts} restarts)")
    if args.json:
        record = {
            "images": args.images,
            "mse": found.mse.tolist(),
            "z": found.z.tolist(),
            "steps": args.invert_steps,
            "restarts": args.restarts,
            "lr": args.lr,
            "seed": args.seed,
        }
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    pairs = torch.stack([x.to(found.reconstruction), found.reconstruction], dim=1).flatten(0, 1)
    return _written("input | reconstruction pairs", save_grid(pairs, args.output, nrow=2))


def _sweep(args: argparse.Namespace) -> int:
    if args.label is not None:
        raise ConfigError("sweep shows every class in turn: choose them with --classes, not --class")
    model = sample.require_sampler(load(args.run, device=args.device))
    if Path(args.output).suffix.lower() != ".png":
        raise ConfigError(f"-o is the PNG to write; got {args.output!r}")
    if args.n < 1:
        raise ConfigError(f"-n is the number of latents, at least 1; got {args.n}")
    z = sample.sample_latents(model, args.n, torch.Generator().manual_seed(args.seed), args.truncation)
    grid = conditional.sweep_grid(model, z, args.classes)
    return _written(f"{args.n} latents x {grid.nrow} classes", save_grid(grid.images, args.output, nrow=grid.nrow))


def _mix(args: argparse.Namespace) -> int:
    model = style.require_style_based(_model(args))
    assert isinstance(model, LatentSampler)  # a style-based G samples z
    if not (1 <= args.rows <= 32 and 1 <= args.cols <= 32):
        raise ConfigError(f"--rows and --cols are 1..32 latents each; got {args.rows} and {args.cols}")
    z = sample.sample_latents(model, args.rows + args.cols, torch.Generator().manual_seed(args.seed), args.truncation)
    crossover = model.num_ws // 2 if args.crossover is None else args.crossover
    grid = style.mixing_grid(model, z[: args.rows], z[args.rows :], crossover, args.psi)
    save_grid(grid.images, args.output, nrow=grid.nrow)
    print(
        f"wrote a {args.rows} x {args.cols} style-mixing grid (layers {crossover}..{model.num_ws - 1} "
        f"from the columns) to {args.output}"
    )
    return 0
