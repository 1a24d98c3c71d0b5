"""FID against kimg for the later generators (issue 13): StyleGAN2 and ProGAN on 32-pixel colour sprites.

    PYTHONPATH=src python benchmarks/later_generators.py [--kimg 160] [--every 20] [--n 2000] [--threads 1]
        [--configs configs/stylegan_sprites.yaml configs/progan_sprites.yaml] [--seeds 0 1 2]
        [--classifier RUN] [--set K=V] [--out runs/bench-later]

Progressive growing against its control (issue 25, claim 2), the same nets at 32 px from the first image:

    PYTHONPATH=src python benchmarks/later_generators.py --configs configs/progan_sprites.yaml \
        "configs/progan_sprites.yaml@model.grow=false" --seeds 0 1 2 --kimg 160 --every 20

1. Trains the attribute classifier (configs/attribute_classifier.yaml) on captioned colour
   sprites, the generators' own data (textured backgrounds), unless --classifier names such a run.
   Its penultimate layer is FID's feature space (Inception's knows no sprites); its accuracy on
   real test sprites says how much it sees.
2. Trains each config for --kimg, keeping a checkpoint every --every kimg (--set applies to each).
3. Scores every checkpoint's export (the EMA generator) with --n samples against --n real test
   sprites: FID in the classifier's features, beside real training sprites against the same test
   sprites (the floor at this n), and the training loop's seconds up to that checkpoint (from the
   run's logged images/s, so scoring is not counted).
4. Writes OUT/fid-kimg.png and OUT/fid-seconds.png (one line per recipe and seed), and a table of
   each recipe's FID at equal kimg (the last checkpoint) and at equal time (every recipe read, by
   linear interpolation on its curve, at the loop time of the recipe that finished first), seed
   mean ± sd. A recipe may carry overrides after an @, comma-separated (``PATH@key=value,...``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.captions import ATTRIBUTES
from genlab.metrics import fid
from genlab.metrics.captions import attribute_accuracy, classifier_features, predicted_attributes
from genlab.plotting import draw_lines
from genlab.runs.checkpoint import kimg_of, list_checkpoints
from genlab.runs.folder import loop_seconds

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/stylegan_sprites.yaml", "configs/progan_sprites.yaml"]
QUIET = ["train.progress_bar=false", "train.tensorboard=false", "train.snapshot_every_kimg=0"]
# The judge reads the generators' data: captioned colour sprites instead of plain ones.
JUDGE_DATA = ["data.base={name: color_sprites, image_size: 32, n_train: 20000, n_test: 2000}"]


def label(recipe: str) -> str:
    path, _, own = recipe.partition("@")
    return Path(path).stem + (f" ({own})" if own else "")


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=CONFIGS, help="recipes: PATH[@key=value,...]")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--kimg", type=float, default=160.0)
    parser.add_argument("--every", type=float, default=20.0, help="kimg between scored checkpoints")
    parser.add_argument("--n", type=int, default=2000, help="samples per checkpoint and real test sprites")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classifier", help="an attribute classifier run trained on captioned colour sprites")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every generator config (repeatable)")
    parser.add_argument("--out", default="runs/bench-later", help="where the runs and figures go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = [f"train.threads={args.threads}", f"train.out_dir={out}", *QUIET]

    start = time.perf_counter()
    judge_path = str(ROOT / "configs" / "attribute_classifier.yaml")
    judge_run = args.classifier or genlab.train(judge_path, common + JUDGE_DATA)
    judge = genlab.load(judge_run)
    judge_test = load_dataset(load_config(judge_path, JUDGE_DATA).data, "test").batch(slice(None))
    truth = torch.stack([judge_test[name] for name in ATTRIBUTES], dim=1)
    accuracy = attribute_accuracy(predicted_attributes(judge, judge_test["image"]), truth)
    print(f"attribute classifier {judge_run} ({time.perf_counter() - start:.0f} s), accuracy on real test colour "
          "sprites: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()), flush=True)

    rows, curves = [], {}  # curves[(recipe, seed)] = (kimg, seconds, fid) per checkpoint
    for recipe in args.configs:
        path, _, own = recipe.partition("@")
        sizes = [f"data.n_train={args.n}", f"data.n_test={args.n}"]
        real = {split: load_dataset(load_config(ROOT / path, sizes).data, split).batch(slice(None))["image"]
                for split in ("train", "test")}
        real_test = classifier_features(judge, real["test"])
        floor = fid.fid(classifier_features(judge, real["train"]), real_test)["fid"]
        for seed in args.seeds:
            overrides = [*common, f"train.kimg={args.kimg}", f"train.checkpoint_every_kimg={args.every}",
                         f"train.keep_checkpoints={int(args.kimg / args.every) + 2}", f"train.seed={seed}",
                         *args.overrides, *filter(None, own.split(","))]
            start = time.perf_counter()
            run_dir = Path(genlab.train(load_config(ROOT / path, overrides)))
            train_s = time.perf_counter() - start
            points = []
            for checkpoint in list_checkpoints(run_dir / "checkpoints"):
                kimg = kimg_of(checkpoint)
                G = genlab.load(run_dir, checkpoint=checkpoint)
                with torch.no_grad():
                    samples = torch.cat([G.sample(len(chunk), generator=torch.Generator().manual_seed(1 + i))
                                         for i, chunk in enumerate(torch.arange(args.n).split(500))])
                score = fid.fid(classifier_features(judge, samples), real_test)["fid"]
                seconds = loop_seconds(run_dir, kimg)
                points.append((kimg, seconds, score))
                print(json.dumps({"config": recipe, "seed": seed, "run": str(run_dir), "kimg": kimg, "fid": score,
                                  "loop_s": seconds, "floor": floor, "train_s": train_s}), flush=True)
                rows.append(f"| {label(recipe)} | {seed} | {kimg:g} | {seconds:.0f} | {score:.1f} | {floor:.1f} |")
            curves[recipe, seed] = points

    print(f"\n{args.threads} thread(s), {args.n} samples and {args.n} real test sprites per row; floor: real train "
          f"vs real test sprites")
    print("| recipe | seed | kimg | loop s | FID (attribute classifier features) | floor |",
          "|---|---|---|---|---|---|",
          *rows, sep="\n")
    series = {f"{label(r)} seed {seed}": points for (r, seed), points in curves.items()}
    title = "FID (attribute classifier features)"
    for x, name, axis in ((0, "kimg", "training kimg"), (1, "seconds", "training loop seconds")):
        draw_lines({title: {k: ([p[x] for p in v], [p[2] for p in v]) for k, v in series.items()}}, axis,
                   out / f"fid-{name}.png", legend="right")
    # Equal time: the loop time at which the fastest recipe's slowest seed finished.
    budget = min(max(points[-1][1] for (r, _), points in curves.items() if r == recipe) for recipe in args.configs)
    print(f"\n| recipe | FID at {args.kimg:g} kimg (equal kimg) | FID at {budget:.0f} loop s (equal time) | "
          "loop s to finish |\n|---|---|---|---|")
    for recipe in args.configs:
        mine = [points for (r, _), points in curves.items() if r == recipe]
        at_time = [float(np.interp(budget, [p[1] for p in points], [p[2] for p in points])) for points in mine]
        print(f"| {label(recipe)} | {mean_sd([points[-1][2] for points in mine])} | {mean_sd(at_time)} | "
              f"{mean_sd([points[-1][1] for points in mine])} |")
    print(f"figures: {out / 'fid-kimg.png'}, {out / 'fid-seconds.png'}")


if __name__ == "__main__":
    main()
