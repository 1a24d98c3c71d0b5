"""FID against kimg for the later generators (issue 13): StyleGAN2 and ProGAN on 32-pixel colour sprites.

    PYTHONPATH=src python benchmarks/later_generators.py [--kimg 160] [--every 20] [--n 2000] [--threads 1]
        [--configs configs/stylegan_sprites.yaml configs/progan_sprites.yaml] [--classifier RUN] [--set K=V]

1. Trains the attribute classifier (configs/attribute_classifier.yaml) on captioned colour
   sprites, the generators' own data (textured backgrounds), unless --classifier names such a run.
   Its penultimate layer is FID's feature space (Inception's knows no sprites); its accuracy on
   real test sprites says how much it sees.
2. Trains each config for --kimg, keeping a checkpoint every --every kimg (--set applies to each).
3. Scores every checkpoint's export (the EMA generator) with --n samples against --n real test
   sprites: FID in the classifier's features, beside real training sprites against the same test
   sprites (the floor at this n).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.captions import ATTRIBUTES
from genlab.metrics import fid
from genlab.metrics.captions import attribute_accuracy, classifier_features, predicted_attributes
from genlab.runs.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/stylegan_sprites.yaml", "configs/progan_sprites.yaml"]
QUIET = ["train.progress_bar=false", "train.tensorboard=false", "train.snapshot_every_kimg=0"]
# The judge reads the generators' data: captioned colour sprites instead of plain ones.
JUDGE_DATA = ["data.base={name: color_sprites, image_size: 32, n_train: 20000, n_test: 2000}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--kimg", type=float, default=160.0)
    parser.add_argument("--every", type=float, default=20.0, help="kimg between scored checkpoints")
    parser.add_argument("--n", type=int, default=2000, help="samples per checkpoint and real test sprites")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classifier", help="an attribute classifier run trained on captioned colour sprites")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of every generator config (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(tempfile.mkdtemp(prefix="genlab-later-"))
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

    rows = []
    for path in args.configs:
        overrides = [*common, f"train.kimg={args.kimg}", f"train.checkpoint_every_kimg={args.every}",
                     f"train.keep_checkpoints={int(args.kimg / args.every) + 2}", *args.overrides]
        config = load_config(ROOT / path, overrides)
        sizes = [f"data.n_train={args.n}", f"data.n_test={args.n}"]
        real = {split: load_dataset(load_config(ROOT / path, sizes).data, split).batch(slice(None))["image"]
                for split in ("train", "test")}
        real_test = classifier_features(judge, real["test"])
        floor = fid.fid(classifier_features(judge, real["train"]), real_test)["fid"]

        start = time.perf_counter()
        run_dir = genlab.train(config)
        train_s = time.perf_counter() - start
        for checkpoint in list_checkpoints(Path(run_dir) / "checkpoints"):
            kimg = int(checkpoint.name.split("-")[1]) / 1000
            G = genlab.load(run_dir, checkpoint=checkpoint)
            with torch.no_grad():
                samples = torch.cat([G.sample(len(chunk), generator=torch.Generator().manual_seed(1 + i))
                                     for i, chunk in enumerate(torch.arange(args.n).split(500))])
            score = fid.fid(classifier_features(judge, samples), real_test)["fid"]
            print(json.dumps({"config": path, "run": str(run_dir), "kimg": kimg, "fid": score, "floor": floor,
                              "train_s": train_s}), flush=True)
            rows.append(f"| {Path(path).stem} | {kimg:g} | {score:.1f} | {floor:.1f} |")

    print(f"\n{args.threads} thread(s), {args.n} samples and {args.n} real test sprites per row; floor: real train "
          f"vs real test sprites")
    print("| config | kimg | FID (attribute classifier features) | floor |", "|---|---|---|---|", *rows, sep="\n")


if __name__ == "__main__":
    main()
