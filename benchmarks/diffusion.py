"""GANs, VAEs, diffusion and flow matching on one axis (issue 26): the same data, judge and CPU budget.

Each config trains for ``--minutes`` of loop time (``train.max_minutes``, with ``train.kimg`` raised so
that the clock ends training) with a checkpoint every ``--every`` kimg. Then, in genlab's digit
classifier's features against the training split (``--features sprites --classifier RUN``: an
attribute classifier's, for sprite data given by ``--set data=...``; no class coverage there):

- quality against training: FID-MNIST of every checkpoint on ``--curve-n`` samples (the iterative
  samplers at their config's steps), against kimg and against the loop's seconds;
- sampling cost: FID of the final model against network evaluations per sample (``--nfe``; Euler and
  DDIM take one per step, Heun two), the GAN's and the VAE's single pass on the same plot;
- the headline row: FID, precision, recall and class coverage on ``--n`` samples at the config's steps,
  and the seconds per sample on this CPU.

One table and two PNGs (``--out``/diffusion.png, the curves; diffusion-samples.png, 48 samples of
each model at its table settings); scores already in a run's eval folder are read back:

    PYTHONPATH=src python benchmarks/diffusion.py --data-root ../shared/data --threads 2 [--minutes 5]
        [--configs configs/fast_mnist_gan.yaml configs/flow_mnist.yaml configs/ddpm_mnist.yaml]
        [--nfe 1 2 4 8 16 32] [--n 5000] [--curve-n 1000] [--every 20] [--out runs/bench-diffusion]
        [--runs RUN ...] [--sampler ddpm-mnist=ancestral]
    PYTHONPATH=src python benchmarks/diffusion.py --features sprites --classifier ATTRIBUTE_RUN \
        --set "data={name: color_sprites, image_size: 32}" ...

Needs a trained digit classifier (``genlab train-classifier``) or ``--classifier RUN``.
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
from genlab.config import Config, load_config
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings
from genlab.models.protocols import IterativeSampler
from genlab.plotting import draw_lines
from genlab.runs.checkpoint import kimg_of, list_checkpoints
from genlab.runs.folder import read_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["configs/fast_mnist_gan.yaml", "configs/flow_mnist.yaml", "configs/ddpm_mnist.yaml"]


def score(run_dir: Path, config: Config, args, metrics: tuple[str, ...], n: int, tag: str, nfe: int | None = None,
          checkpoint: Path | None = None) -> dict:
    """``metrics`` of the run's export (or of ``checkpoint``), at ``nfe`` evaluations for an iterative sampler.

    Read back from the eval card (and this script's timing.json beside it) when an earlier call wrote
    them with the same settings: the folder's name holds the tag, the sampler and its steps."""
    model = genlab.load(run_dir, checkpoint=checkpoint)
    evaluations, how = 1, "one pass"
    if isinstance(model, IterativeSampler):
        model.set_sampling(sampler=args.sampler.get(config.name))
        if nfe is not None:
            model.set_sampling(steps=max(1, nfe * model.steps // model.evaluations))  # per step: Heun 2, guided 2x
        tag, evaluations = f"{tag}-{model.sampler}{model.steps}", model.evaluations
        how = f"{model.sampler}, {model.steps} steps"
    out_dir = run_dir / "eval" / ("diffusion-" + ("" if args.features == "mnist" else f"{args.features}-") + tag)
    if (out_dir / "card.json").is_file() and (out_dir / "timing.json").is_file():
        card = json.loads((out_dir / "card.json").read_text())
        same = card["settings"]["n"] == n and card["settings"]["seed"] == args.seed
        if same and set(metrics) <= set(card["settings"]["metrics"]):
            return {**card["results"], "nfe": evaluations, "sampler": how,
                    **json.loads((out_dir / "timing.json").read_text())}
    settings = EvalSettings(metrics=metrics, n=n, features=args.features, seed=args.seed, classifier=args.classifier)
    start = time.perf_counter()
    results, _ = evaluate(model, config, settings, out_dir, run=str(run_dir))
    timing = {"eval_s": time.perf_counter() - start}
    (out_dir / "timing.json").write_text(json.dumps(timing))
    return {**results, "nfe": evaluations, "sampler": how, **timing}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--runs", nargs="+", help="score these trained runs (one per config, same order) instead")
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--every", type=float, default=20.0, help="checkpoint (and curve point) every K kimg")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=5000, help="samples for the headline row")
    p.add_argument("--curve-n", type=int, default=1000, help="samples per point of the two curves")
    p.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", choices=("mnist", "sprites"), default="mnist", help="the feature space of FID")
    p.add_argument("--classifier", help="its classifier run (mnist: by default the newest from genlab train-classifier)")
    p.add_argument("--out", default="runs/bench-diffusion")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--sampler", action="append", default=[], metavar="RUN_NAME=SAMPLER",
                   help="sample the run named RUN_NAME (its config's name, e.g. ddpm-mnist) with SAMPLER")
    args = p.parse_args()
    args.sampler = dict(item.split("=", 1) for item in args.sampler)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, training, sampling, models = [], {}, {}, {}
    for i, path in enumerate(args.configs):
        name = Path(path).stem
        if args.runs:
            run_dir, config, _ = read_run(args.runs[i])
        else:
            config = load_config(ROOT / path, [
                f"data.root={args.data_root}", f"train.threads={args.threads}", f"train.max_minutes={args.minutes}",
                "train.kimg=100000", f"train.out_dir={out}", "train.progress_bar=false", "train.tensorboard=false",
                "train.snapshot_every_kimg=0", f"train.checkpoint_every_kimg={args.every}", "train.keep_checkpoints=1000",
                *args.overrides,
            ])
            run_dir = genlab.train(config)
        kimg, speed = loop_speed(run_dir)
        curve = []
        for ckpt in list_checkpoints(run_dir / "checkpoints"):
            at = kimg_of(ckpt)
            r = score(run_dir, config, args, ("fid",), args.curve_n, f"curve-{at:g}kimg", checkpoint=ckpt)
            curve.append((at, seconds_at(run_dir, at), r["fid"]))
            print(json.dumps({"config": name, "kimg": at, "seconds": curve[-1][1], "fid": r["fid"]}), flush=True)
        training[name] = curve
        model = genlab.load(run_dir)
        if isinstance(model, IterativeSampler):
            model.set_sampling(sampler=args.sampler.get(config.name))
        models[name] = model
        nfes = args.nfe if isinstance(model, IterativeSampler) else [1]
        sampling[name] = []
        for nfe in nfes:
            r = score(run_dir, config, args, ("fid",), args.curve_n, f"nfe{nfe}-n{args.curve_n}", nfe=nfe)
            sampling[name].append((r["nfe"], r["fid"]))
            print(json.dumps({"config": name, "nfe": r["nfe"], "fid": r["fid"], "eval_s": r["eval_s"]}), flush=True)
        head = score(run_dir, config, args, ("fid", "pr", "modes") if args.features == "mnist" else ("fid", "pr"),
                     args.n, f"n{args.n}")
        row = {"config": name, "run": str(run_dir), "kimg": kimg, "images_per_sec": speed,
               "train_s": seconds_at(run_dir, kimg), "ms_per_sample": 1000 * head["eval_s"] / args.n,
               **{k: v for k, v in head.items() if k != "mode_histogram"}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "results.json").write_text(json.dumps({"rows": rows, "training": training, "sampling": sampling},
                                                     indent=1))
    fid_name = "FID-MNIST" if args.features == "mnist" else f"FID ({args.features})"
    print(f"\n{args.minutes:g} min of training per recipe on {args.threads} thread(s); {fid_name} on {args.n} samples "
          f"(curves: {args.curve_n}), eval seed {args.seed}")
    print(f"| recipe | kimg | images/s | sampler | NFE | {fid_name} | precision | recall | classes covered | ms per sample |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['kimg']:.1f} | {r['images_per_sec']:.0f} | {r['sampler']} | {r['nfe']} | {r['fid']:.1f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r.get('modes_covered', 'n/a')} | {r['ms_per_sample']:.2f} |")
    for name, points in sampling.items():
        print(f"{name} FID against NFE: " + ", ".join(f"{nfe}: {fid:.1f}" for nfe, fid in points))
    panels = {
        f"{fid_name} ({args.curve_n} samples) against kimg": {k: ([a for a, _, _ in c], [f for _, _, f in c])
                                                             for k, c in training.items() if c},
        "against the loop's seconds": {k: ([s for _, s, _ in c], [f for _, _, f in c]) for k, c in training.items() if c},
        "log10 FID against network evaluations per sample (log2)": {
            k: ([math.log2(n) for n, _ in pts], [math.log10(f) for _, f in pts]) for k, pts in sampling.items()
        },
    }
    draw_lines(panels, "kimg | seconds | log2(NFE)", out / "diffusion.png", legend="top-right")
    samples_figure(models, out / "diffusion-samples.png", n=48)
    print(f"results and figure in {out}")


if __name__ == "__main__":
    main()
