"""The seeds' comparison of likelihood models (issue 27), measured on MNIST: what each family pays and gets.

Each config trains for ``--minutes`` of loop time on binarised MNIST (``--data binarized``, the
default: ``data.binarize``, each pixel drawn once, white with probability intensity / 255, as
Salakhutdinov & Murray's set) or on 8-bit MNIST (``--data 8bit``), then:

- test negative log-likelihood in nats (and bits per dimension) on ``--nll-n`` test digits: exact for
  an autoregressive model (PixelCNN), the dequantised bound for a flow (Glow), the sampling-free bound
  of a VQ-VAE (its posterior is a point), the importance-weighted bound with ``--iw-k`` samples for a
  VAE (Burda et al. 2016), beside the published figure for that family where one exists;
- FID-MNIST of ``--n`` samples (the digit classifier's features, against the binarised training split);
- the seconds to draw one image on this CPU (a batch of ``--n`` timed as a whole);
- whether the model has a latent code (an encoder to a space whose points decode to similar images).

One table and one PNG of 36 samples of each model side by side (``--out``/likelihood-samples.png):

    PYTHONPATH=src python benchmarks/likelihood.py --data-root ../shared/data [--minutes 20] [--threads 2]
        [--configs configs/pixelcnn_mnist_binarized.yaml configs/vae_mnist.yaml configs/vqvae_mnist_binarized.yaml]
        [--runs RUN ...]
        [--n 1000] [--nll-n 10000] [--iw-k 1000]
    PYTHONPATH=src python benchmarks/likelihood.py --data 8bit --configs configs/pixelcnn_mnist.yaml \
        configs/glow_mnist.yaml --out runs/bench-likelihood-8bit
    PYTHONPATH=src python benchmarks/likelihood.py --data sprites --classifier ATTRIBUTE_RUN --configs \
        configs/pixelcnn_sprites.yaml configs/glow_sprites.yaml configs/vqvae_sprites.yaml --out runs/bench-likelihood-sprites

Needs a trained digit classifier (``genlab train-classifier``) or ``--classifier RUN`` (on sprites: the
attribute classifier of ``configs/attribute_classifier.yaml``). A VAE has no row on sprites: its
decoder's density is not a distribution over 8-bit values, so its bits/dim would not compare.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from recipes import loop_speed, samples_figure, seconds_at  # benchmarks/recipes.py: this script's folder is on sys.path

import genlab
from genlab.config import load_config
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings
from genlab.models.protocols import Encoder, ExactLikelihood, LikelihoodBound
from genlab.runs.folder import read_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/pixelcnn_mnist_binarized.yaml", "configs/vae_mnist.yaml", "configs/vqvae_mnist_binarized.yaml"]
# Published test NLL on binarised MNIST, nats, as the literature quotes it (docs/notes/likelihood-families.md
# says what was and was not checked against the papers' own tables).
PUBLISHED = {
    "pixelcnn": "81.30 (PixelCNN, van den Oord et al. 2016a; PixelRNN 79.20)",
}


def features(args: argparse.Namespace) -> str:
    """FID's feature space: the digit classifier's on MNIST, the attribute classifier's on sprites."""
    return "sprites" if args.data == "sprites" else "mnist"


def score(run_dir: Path, args: argparse.Namespace) -> dict:
    """The row of one run: its likelihood, FID and sampling time (eval cards are reused when present)."""
    _, config, _ = read_run(run_dir)
    model = genlab.load(run_dir)
    out_dir = run_dir / "eval" / f"likelihood-n{args.n}-nll{args.nll_n}-k{args.iw_k}"
    card = out_dir / "card.json"
    if card.is_file():
        results = json.loads(card.read_text())["results"]
        timing = json.loads((out_dir / "timing.json").read_text())
    else:
        settings = EvalSettings(metrics=("nll",), n=args.nll_n, features=features(args), iw_k=args.iw_k, seed=0,
                                classifier=args.classifier)
        results, _ = evaluate(model, config, settings, out_dir / "nll", run=str(run_dir))
        start = time.perf_counter()
        settings = EvalSettings(metrics=("fid",), n=args.n, features=features(args), seed=0, classifier=args.classifier)
        fid_results, _ = evaluate(model, config, settings, out_dir, run=str(run_dir))
        results |= fid_results
        (out_dir / "card.json").write_text(json.dumps({"results": results}))
        timing = {"eval_s": time.perf_counter() - start}
        with torch.no_grad():  # the sampling alone, for the per-image time
            start = time.perf_counter()
            model.sample(min(args.n, 64), generator=torch.Generator().manual_seed(1))
            timing["sample_s_per_image"] = (time.perf_counter() - start) / min(args.n, 64)
        (out_dir / "timing.json").write_text(json.dumps(timing))
    kind = "exact" if isinstance(model, ExactLikelihood) else "bound" if isinstance(model, LikelihoodBound) else "iw"
    nll, nll_se = {
        "exact": ("nll_nats", "nll_se"), "bound": ("nll_bound_nats", "nll_bound_se"), "iw": ("iw_nll_nats", "iw_nll_se")
    }[kind]
    kimg, speed = loop_speed(run_dir)
    return {
        "model": "vqvae-2" if getattr(config.model, "two_level", False) else config.model.name,
        "run": str(run_dir),
        "kimg": kimg,
        "images_per_sec": speed,
        "train_s": seconds_at(run_dir, kimg),
        "nll": results[nll],
        "nll_se": results[nll_se],
        "bits_per_dim": results[nll] / (math.prod(model.image_shape) * math.log(2)),
        "nll_kind": {
            "exact": "dequantised bound" if config.model.name == "glow" else "exact",
            "bound": "bound: -log p(x | z(x)) p(z(x))",
            "iw": f"IW bound, k = {args.iw_k}",
        }[kind],
        "published": PUBLISHED.get(config.model.name, "n/a") if args.data == "binarized" else "n/a",
        "fid": results["fid"],
        "sample_s": timing["sample_s_per_image"],
        "latent_code": "yes" if getattr(model, "has_latent_code", isinstance(model, Encoder)) else "no",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--data", choices=("binarized", "8bit", "sprites"), default="binarized",
                   help="MNIST binarised or 8-bit, or the configs' own data (colour sprites) with --features sprites")
    p.add_argument("--runs", nargs="+", help="score these trained runs instead of training the configs")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=1000, help="samples for FID")
    p.add_argument("--nll-n", type=int, default=10000, help="test images for the NLL")
    p.add_argument("--iw-k", type=int, default=1000, help="importance samples for a VAE's bound")
    p.add_argument("--classifier", help="digit classifier run (default: the newest from genlab train-classifier); "
                   "for --data sprites, the attribute classifier run (configs/attribute_classifier.yaml)")
    p.add_argument("--out", default="runs/bench-likelihood")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in args.runs or []]
    for path in [] if args.runs else args.configs:
        mnist = [] if args.data == "sprites" else [f"data.root={args.data_root}",
                                                   f"data.binarize={args.data == 'binarized'}"]
        config = load_config(ROOT / path, [
            *mnist, f"train.threads={args.threads}", f"train.max_minutes={args.minutes}", "train.kimg=100000",
            f"train.out_dir={out}", "train.progress_bar=false", "train.tensorboard=false",
        ])
        runs.append(genlab.train(config))
    rows = []
    for run_dir in runs:
        rows.append(score(run_dir, args))
        print(json.dumps(rows[-1]), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    data = "colour sprites" if args.data == "sprites" else f"{args.data} MNIST"
    fid = "FID (attribute classifier)" if args.data == "sprites" else "FID-MNIST"
    print(f"\n{data}; NLL on {args.nll_n} test images, {fid} on {args.n} samples, {args.threads} thread(s)")
    print(f"| model | kimg | train min | test NLL, nats | bits/dim | published | {fid} | s per sample | latent code |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kimg']:.0f} | {r['train_s'] / 60:.1f} | {r['nll']:.2f} ± {r['nll_se']:.2f} "
              f"({r['nll_kind']}) | {r['bits_per_dim']:.3f} | {r['published']} | {r['fid']:.1f} | {r['sample_s']:.3f} "
              f"| {r['latent_code']} |")
    samples_figure({r["model"]: genlab.load(r["run"]) for r in rows}, out / "likelihood-samples.png", n=36)
    print(f"results and figure in {out}")


if __name__ == "__main__":
    main()
