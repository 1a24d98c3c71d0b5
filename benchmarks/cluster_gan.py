"""An unconditional GAN conditioned on k-means clusters against the same networks without them (issue 30:
the zoo GAN's FID-MNIST <= 10).

Each recipe trains once per seed with a checkpoint every ``--every`` kimg; every checkpoint's export
is scored on ``--n`` samples in the digit classifier's features: FID, precision, recall and the KL
of the classes it reads to uniform (how unevenly the digits are drawn). Prints one table row per
checkpoint and writes OUT/cluster_gan.png (FID and class KL against kimg; the curves are kept in
OUT/curves.json, so runs of several calls share the figure).

    PYTHONPATH=src python benchmarks/cluster_gan.py --data-root ../shared/data \\
        [--configs RECIPE ...] [--kimg 1000] [--every 100] [--seeds 0] [--threads 2]

The default recipes are configs/cluster_gan_mnist.yaml and its control without clusters,
"configs/cluster_gan_mnist.yaml@data.clusters=0,model.clusters=false" (a recipe's own overrides follow an @).

``--imbalance`` instead measures what an uneven class mix alone costs: real test images drawn
(with replacement) in class shares whose KL to uniform is 0, 0.004, 0.01, 0.03 and 0.1, scored
against the training split like a model's samples. For the ranking check on a second data set of
MNIST's shape, train a judge on it and pass it: `genlab train-classifier --out runs/judge-mnistm-grey
--set data.name=mnist_m --set data.channels=1`, then `--classifier RUN --set data.name=mnist_m
data.channels=1`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import genlab
from genlab.config import Config
from genlab.data import load_dataset
from genlab.data.standard import StandardConfig
from genlab.metrics.classifier_features import mnist_extractor
from genlab.metrics.coverage import KEY_KL_UNIFORM, mode_coverage
from genlab.metrics.evaluate import evaluate
from genlab.metrics.features import extract_features
from genlab.metrics.fid import fid
from genlab.metrics.settings import EvalSettings
from genlab.plotting import draw_lines
from genlab.runs.checkpoint import kimg_of, list_checkpoints
from genlab.runs.folder import read_run
from class_control import add_recipe_arguments, run_recipe  # benchmarks/: this script's folder is on sys.path
from recipes import loop_speed

CONFIGS = ("configs/cluster_gan_mnist.yaml", "configs/cluster_gan_mnist.yaml@data.clusters=0,model.clusters=false")
METRICS = ("fid", "pr", "modes")
KLS = (0.0, 0.004, 0.01, 0.03, 0.1)


def shares_with_kl(kl: float, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    """Random class shares whose KL to uniform is ``kl`` (bisection on the temperature of random logits)."""
    logits, low, high = rng.normal(size=classes), 0.0, 20.0
    for _ in range(60):
        t = (low + high) / 2
        p = np.exp(t * logits) / np.exp(t * logits).sum()
        # the modes metric's own KL, so that the shares match what it reports for a model's samples
        low, high = (t, high) if mode_coverage(torch.from_numpy(p))[KEY_KL_UNIFORM] < kl else (low, t)
    return p


def imbalance(args: argparse.Namespace, draws: int = 3) -> None:
    """FID of real test images drawn in uneven class shares, against the training split."""
    root = StandardConfig("mnist", args.data_root, download=False)
    train, test = load_dataset(root, "train"), load_dataset(root, "test")
    extractor = mnist_extractor(args.classifier)
    reference = extract_features(extractor, train["image"])["features"]
    features = extract_features(extractor, test["image"])["features"]
    labels, rng = test["label"].numpy(), np.random.default_rng(0)
    print(f"the test split itself: FID {fid(features, reference)['fid']:.1f}")
    print("| class KL to uniform | FID of 10,000 real test images drawn in those shares (one per draw) |")
    print("|---|---|")
    for kl in KLS:
        values = []
        for _ in range(draws):
            counts = rng.multinomial(len(labels), shares_with_kl(kl, rng) if kl else np.full(10, 0.1))
            index = np.concatenate([rng.choice(np.flatnonzero(labels == c), n) for c, n in enumerate(counts)])
            values.append(fid(features[torch.from_numpy(index)], reference)["fid"])
        print(f"| {kl:g} | {' / '.join(f'{v:.1f}' for v in values)} |", flush=True)


def purity(config: Config) -> float:
    """The share of training images whose cluster's commonest class is theirs (random clusters: about 0.1)."""
    data = load_dataset(config.data)
    clusters, labels = data["cluster"], data["label"]
    counts = torch.zeros(config.data.clusters, int(labels.max()) + 1).index_put_(
        (clusters, labels), torch.ones(len(labels)), accumulate=True
    )
    return float(counts.max(dim=1).values.sum() / len(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_recipe_arguments(parser, CONFIGS, every=100, n=10_000, out="runs/bench-cluster-gan")
    parser.add_argument("--imbalance", action="store_true", help="only measure what class imbalance costs real images")
    parser.add_argument("--runs", nargs="+", default=[], metavar="RUN", help="score these runs, train none")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.imbalance:
        imbalance(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "curves.json"
    curves: dict[str, dict[str, list]] = json.loads(saved.read_text()) if saved.is_file() else {}
    print("| run | seed | kimg | FID | precision | recall | class KL | images/s | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    if args.runs:
        for run in map(Path, args.runs):
            config = read_run(run)[1]
            score(run, config, config.train.seed, "", args, curves, out)
        return
    for recipe in args.configs:
        for seed in args.seeds:
            config = run_recipe(recipe, seed, args)
            if config.data.clusters:
                print(f"{config.data.name}: {purity(config):.3f} of the training images share their cluster's "
                      "commonest class", flush=True)
            start = time.perf_counter()
            run_dir = genlab.train(config)
            score(run_dir, config, seed, f"{time.perf_counter() - start:.0f}", args, curves, out)


def score(run_dir: Path, config: Config, seed: int, train_s: str, args: argparse.Namespace, curves: dict,
          out: Path) -> None:
    """Score every checkpoint of ``run_dir``: a table row each, then its curves into OUT's figure."""
    name = "clusters" if config.data.clusters else "no clusters (control)"
    settings = EvalSettings(metrics=METRICS, n=args.n, features="mnist", classifier=args.classifier)
    speed, points = loop_speed(run_dir)[1], []
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):
        kimg = float(kimg_of(checkpoint))
        r, _ = evaluate(genlab.load(run_dir, checkpoint=checkpoint), config, settings,
                        run_dir / "eval" / f"cluster-gan-{kimg:g}", run=str(run_dir), checkpoint=checkpoint)
        points.append((kimg, r["fid"], r["kl_to_uniform"]))
        print(f"| {name} | {seed} | {kimg:g} | {r['fid']:.1f} | {r['precision']:.3f} | "
              f"{r['recall']:.3f} | {r['kl_to_uniform']:.4f} | {speed:.0f} | {train_s} |", flush=True)
    key = f"{name}, seed {seed}"
    data = config.data.name + (" (grey)" if getattr(config.data, "channels", 0) == 1 else "")
    kimgs = [k for k, _, _ in points]
    curves.setdefault(f"FID in the judge's features, {data}", {})[key] = (kimgs, [f for _, f, _ in points])
    curves.setdefault(f"class KL to uniform, {data}", {})[key] = (kimgs, [q for _, _, q in points])
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    draw_lines(curves, "training kimg", out / "cluster_gan.png", legend="right")


if __name__ == "__main__":
    main()
