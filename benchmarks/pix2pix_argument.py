"""pix2pix's argument (Isola et al. 2017, Sec. 4.2-4.4), as a hypothesis to test: trained on the
same budget, L2 and L1 alone give blurry, desaturated outputs, a cGAN alone sharp but wrong
ones, and cGAN + L1 sharp outputs with a low error. Also the PatchGAN receptive-field sweep
(the paper's Table 3) and the one-to-many question: pix2pix barely uses its dropout noise;
the mode-seeking regulariser (Mao et al. 2019) is the remedy measured here.

    PYTHONPATH=src python benchmarks/pix2pix_argument.py --data-root ../shared/data \
        [--kimg 25] [--threads 1] [--set KEY=VALUE ...] [--n-eval 1000] [--out DIR]

Tasks: grey -> colour on colour sprites and edges -> digits on MNIST (the repository's
configs). Each is trained with L2, L1, cGAN and cGAN + L1 (plus cGAN + L1 + mode seeking on
edges -> digits), then measured on test pairs (genlab.metrics.image_quality): L1 error,
sharpness against the targets', colourfulness, diversity across dropout seeds in pixels
and, for digits, FID and diversity in the digit classifier's feature space (which needs
`genlab train-classifier`). Colour sprites have no domain feature space: genlab's one domain
classifier reads digits in grey, blind to the colours that colourisation changes, so their
FID is not computed. Prints one markdown table per task and writes one PNG per task into
--out: rows of input | L2 | L1 | cGAN | cGAN+L1 | target, and a diversity PNG of four
dropout seeds per input for cGAN + L1 with and without mode seeking.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

import genlab
from genlab.config import Config, load_config
from genlab.data import load_dataset
from genlab.images import save_grid, to_model, to_uint8
from genlab.metrics import image_quality as Q
from genlab.metrics.classifier_features import mnist_extractor
from genlab.metrics.features import Extractor, extract_features
from genlab.metrics.fid import fid
from genlab.runs.folder import read_stats

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"grey2color": ROOT / "configs" / "pix2pix_gray2color_sprites.yaml",
         "edges2digits": ROOT / "configs" / "pix2pix_edges2digits.yaml"}
FEATURES = {"edges2digits"}  # tasks measured in the digit classifier's feature space
ROOT_KEYS = {"edges2digits": "data.base.root"}  # tasks that read files: where --data-root goes
LOSSES = {"L2": ["objective.loss=l2"], "L1": ["objective.loss=l1"], "cGAN": ["objective.loss=cgan"],
          "cGAN+L1": ["objective.loss=cgan_l1"]}
MODE_SEEKING = "cGAN+L1+MS"
RECEPTIVE_FIELDS = {"1": "D 1x1 (PixelGAN)", "16": "D 16x16", "70": "D 70x70", "image": "D image (ImageGAN)"}
DEFAULT_FIELD = "70"  # the configs' D: the sweep reuses the main table's cGAN+L1 run
SEEDS = (0, 1, 2, 3)  # dropout seeds of the diversity measure
PNG_ROWS = 8
BATCH = 250  # images translated per call


@dataclass
class Result:
    name: str
    seconds: float = 0.0  # wall time of genlab.train, data building included
    images_per_sec: float = 0.0  # the loop's median over its log windows
    outputs: Tensor | None = None  # uint8 [N, C, H, W], seed 0
    per_seed: Tensor | None = None  # uint8 [K, n, C, H, W] for the first inputs
    measures: dict[str, float] = field(default_factory=dict)


def task_config(task: str, args: argparse.Namespace, overrides: list[str] = ()) -> Config:
    root = [f"{ROOT_KEYS[task]}={args.data_root}"] if task in ROOT_KEYS else []
    return load_config(TASKS[task], root + list(args.set) + list(overrides))


def train_variant(task: str, overrides: list[str], args: argparse.Namespace, name: str) -> tuple[nn.Module, Result]:
    tag = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")  # "D 1x1 (PixelGAN)" -> D_1x1_PixelGAN
    common = [f"train.kimg={args.kimg}", f"train.threads={args.threads}", f"train.out_dir={args.out}/runs",
              "train.progress_bar=false", "train.tensorboard=false", "train.checkpoint_every_kimg=0",
              f"train.snapshot_every_kimg={args.kimg}", f"name={task}-{tag}"]
    config = task_config(task, args, common + overrides)
    start = time.perf_counter()
    run_dir = genlab.train(config)
    seconds = time.perf_counter() - start
    records = read_stats(run_dir)
    speeds = [r["images_per_sec"] for r in records[1:]] or [records[0]["images_per_sec"]]  # skip warm-up
    return genlab.load(run_dir), Result(name, seconds, statistics.median(speeds))


@torch.no_grad()
def translate(model: nn.Module, sources: Tensor, seed: int) -> Tensor:
    """uint8 sources [N, C, H, W] -> uint8 translations, dropout masks from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([to_uint8(model.translate(to_model(chunk), generator=generator)) for chunk in sources.split(BATCH)])


def measure(model: nn.Module, result: Result, sources: Tensor, targets: Tensor, extractor: Extractor | None,
            target_features: Tensor | None, n_diversity: int) -> Result:
    result.outputs = translate(model, sources, SEEDS[0])
    result.per_seed = torch.stack([result.outputs[:n_diversity]] +
                                  [translate(model, sources[:n_diversity], s) for s in SEEDS[1:]])
    m = {"l1": Q.l1_error(result.outputs, targets), "sharpness": Q.sharpness_ratio(result.outputs, targets),
         "colourfulness": Q.colourfulness(result.outputs), "diversity": Q.diversity(result.per_seed)}
    if extractor is not None:
        features = extract_features(extractor, result.outputs)["features"]
        m["fid"] = fid(features, target_features)["fid"]
        seeds = torch.stack([extract_features(extractor, x)["features"] for x in result.per_seed])
        m["feature_diversity"] = Q.pairwise_distance(seeds)
    result.measures = m
    return result


def reference_row(targets: Tensor, train_targets: Tensor, extractor: Extractor | None, target_features: Tensor | None) -> Result:
    """The targets themselves; their FID is that of as many training images: real digits, but other ones."""
    m = {"l1": 0.0, "sharpness": 1.0, "colourfulness": Q.colourfulness(targets)}
    if extractor is not None:
        m["fid"] = fid(extract_features(extractor, train_targets[: len(targets)])["features"], target_features)["fid"]
    return Result("target", outputs=targets, measures=m)


COLUMNS = {  # measure key -> (column heading, format)
    "l1": ("L1 error", ".4f"), "fid": ("FID (digit features)", ".1f"), "sharpness": ("sharpness / targets'", ".3f"),
    "colourfulness": ("colourfulness M", ".1f"), "diversity": ("diversity (pixels)", ".4f"),
    "feature_diversity": ("diversity (features)", ".3f"),
}


def print_table(title: str, rows: list[Result], colour: bool, with_features: bool) -> None:
    """A markdown table: one row per result, the measures that apply to the task."""
    keys = [k for k in COLUMNS if (colour or k != "colourfulness") and (with_features or k not in ("fid", "feature_diversity"))]
    head = ["", *(COLUMNS[k][0] for k in keys), "train s", "images/s"]
    print(f"\n### {title}\n\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        cells = [r.name] + [format(r.measures[k], COLUMNS[k][1]) if k in r.measures else "—" for k in keys]
        cells += [f"{r.seconds:.0f}", f"{r.images_per_sec:.0f}"] if r.seconds else ["—", "—"]
        print("| " + " | ".join(cells) + " |", flush=True)


def save_columns(columns: list[Tensor], path: Path) -> None:
    """One row per example: the columns' images side by side (grey replicated to RGB)."""
    rgb = [c[:PNG_ROWS].expand(-1, 3, -1, -1) if c.shape[1] == 1 else c[:PNG_ROWS] for c in columns]
    save_grid(to_model(torch.stack(rgb, 1).flatten(0, 1)), path, nrow=len(columns))


def run_task(task: str, args: argparse.Namespace, extractor: Extractor | None) -> None:
    config = task_config(task, args)
    test = load_dataset(config.data, "test")
    sources, targets = test["source"][: args.n_eval], test["target"][: args.n_eval]
    use_features = extractor is not None and task in FEATURES
    ext = extractor if use_features else None
    target_features = extract_features(ext, targets)["features"] if ext else None
    variants = dict(LOSSES) | ({MODE_SEEKING: ["objective.loss=cgan_l1", f"objective.regularisers=[{{name: mode_seeking, weight: {args.ms_weight}}}]"]}
                               if task == args.sweep_task else {})
    results: dict[str, Result] = {}
    for name, overrides in variants.items():
        model, result = train_variant(task, overrides, args, name)
        results[name] = measure(model, result, sources, targets, ext, target_features, args.n_diversity)
    train_targets = load_dataset(config.data, "train")["target"]
    reference = reference_row(targets, train_targets, ext, target_features)
    colour = targets.shape[1] == 3
    print_table(f"{task}, {args.kimg:g} kimg each", [*results.values(), reference], colour, use_features)
    save_columns([sources] + [results[n].outputs for n in LOSSES] + [targets], args.out / f"{task}.png")
    if task != args.sweep_task:
        return
    seeds = [results[n].per_seed for n in ("cGAN+L1", MODE_SEEKING)]
    save_columns([sources, *seeds[0], *seeds[1], targets], args.out / f"{task}_diversity.png")
    sweep = []
    for rf, name in RECEPTIVE_FIELDS.items():
        if rf == DEFAULT_FIELD:
            sweep.append(replace(results["cGAN+L1"], name=name))
            continue
        model, result = train_variant(task, ["objective.loss=cgan_l1", f"model.d_receptive_field={rf}"], args, name)
        sweep.append(measure(model, result, sources, targets, ext, target_features, args.n_diversity))
    print_table(f"{task}, cGAN + L1, D's receptive field, {args.kimg:g} kimg each", sweep, colour, use_features)
    save_columns([sources] + [r.outputs for r in sweep] + [targets], args.out / f"{task}_receptive_field.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="holds MNIST/raw (edges -> digits)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--kimg", type=float, default=25.0, help="training length of every run (the configs': 25)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    parser.add_argument("--n-eval", type=int, default=1000, help="test pairs measured")
    parser.add_argument("--n-diversity", type=int, default=200, help="test inputs translated with each of 4 seeds")
    parser.add_argument("--sweep-task", default="edges2digits", choices=list(TASKS),
                        help="task of the receptive-field sweep and the mode-seeking run")
    parser.add_argument("--ms-weight", type=float, default=1.0, help="weight of the mode-seeking run's mode_seeking term")
    parser.add_argument("--classifier", help="digit classifier run (default: the newest trained one)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-pix2pix"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    extractor = mnist_extractor(args.classifier) if FEATURES & set(args.tasks) else None
    start = time.perf_counter()
    for task in args.tasks:
        run_task(task, args, extractor)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; PNGs in {args.out}")


if __name__ == "__main__":
    main()
