"""Social GAN's table (Gupta et al. 2018, Table 1) on simulated crowds: ADE and FDE in metres, best of 20
samples and of one, for Social GAN, its variant trained with k = 1, and the plain LSTM, beside the
constant-velocity baseline; plus how far the 20 samples spread. One PNG shows, for the same test scenes,
each model's observed paths (black), true futures (green) and 20 predictions (red).

Each entry of ``--configs`` is a config file with optional overrides after a colon
(``configs/social_gan_crowds.yaml:objective.variety_k=1``); ``--set`` applies overrides to every config
(the data: ``--set data.exit_probs=[0.2,0.6,0.2] data.seed=1`` for a second data set of the same shape).
Every run trains for ``--kimg`` thousand scenes (or ``--minutes`` of loop time), ``--jobs`` at a time:

    PYTHONPATH=src python benchmarks/trajectories.py [--kimg 200] [--threads 1] [--jobs 2] [--n 1000]
        [--configs configs/social_gan_crowds.yaml configs/social_gan_crowds.yaml:objective.variety_k=1
                   configs/trajectory_lstm_crowds.yaml] [--set KEY=VALUE ...] [--out runs/bench-trajectories]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from recipes import loop_speed, seconds_at  # benchmarks/recipes.py: this script's folder is on sys.path

import genlab
from genlab.data import load_dataset
from genlab.data.base import trajectory_field
from genlab.metrics.evaluate import evaluate
from genlab.metrics.settings import EvalSettings
from genlab.plotting import draw_scenes
from genlab.runs.folder import read_run

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "configs/social_gan_crowds.yaml",
    "configs/social_gan_crowds.yaml:objective.variety_k=1",
    "configs/trajectory_lstm_crowds.yaml",
]
FIGURE_SCENES = 6


def train_all(args: argparse.Namespace, out: Path) -> list[Path]:
    """Each config trained by ``genlab train`` in its own process, ``--jobs`` at a time; their run folders."""
    jobs: list[tuple[subprocess.Popen, Path]] = []
    runs = []
    for i, entry in enumerate(args.configs):
        path, _, extra = entry.partition(":")
        folder = out / f"{i:02d}"
        overrides = [*filter(None, extra.split(",")), *args.set, f"train.threads={args.threads}",
                     f"train.out_dir={folder}", "train.progress_bar=false", "train.tensorboard=false"]
        overrides += [f"train.max_minutes={args.minutes}", "train.kimg=100000"] if args.minutes else [
            f"train.kimg={args.kimg}"]
        command = [sys.executable, "-m", "genlab", "train", str(ROOT / path)]
        for o in overrides:
            command += ["--set", o]
        while len([j for j, _ in jobs if j.poll() is None]) >= args.jobs:
            jobs[[j.poll() is None for j, _ in jobs].index(True)][0].wait()
        jobs.append((subprocess.Popen(command), folder))
    for job, folder in jobs:
        if job.wait() != 0:
            raise SystemExit(f"training into {folder} failed")
        runs.append(next(folder.iterdir()))
    return runs


def score(run_dir: Path, args: argparse.Namespace) -> dict:
    _, config, _ = read_run(run_dir)
    model = genlab.load(run_dir)
    settings = EvalSettings(metrics=("ade_fde",), n=args.n, seed=0)
    results, _ = evaluate(model, config, settings, run_dir / "eval" / f"trajectories-n{args.n}", run=str(run_dir))
    kimg, speed = loop_speed(run_dir)
    label = f"{config.model.name} (noise {config.model.noise_dim}, k = {config.objective.variety_k}"  # type: ignore[attr-defined]
    label += ")" if config.objective.adversarial_weight > 0 else ", no D)"  # type: ignore[attr-defined]
    return {"model": label, "run": str(run_dir), "kimg": kimg, "scenes_per_sec": speed,
            "train_s": seconds_at(run_dir, kimg), **results}


def figure(rows: list[dict], path: Path) -> None:
    """One row of panels per model, over the same test scenes."""
    _, config, _ = read_run(Path(rows[0]["run"]))
    data = load_dataset(config.data, "test")
    key, field = trajectory_field(data.spec, "figure")
    paths = data[key][:FIGURE_SCENES]
    observed, truth = paths[:, :, : field.observed], paths[:, :, field.observed :]
    panels = []
    for r in rows:
        model = genlab.load(Path(r["run"]))
        predictions = model.predict(observed, 20, torch.Generator().manual_seed(0))
        panels.append(np.asarray(draw_scenes(observed.numpy(), truth.numpy(), predictions.numpy())))
    Image.fromarray(np.concatenate(panels)).save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--set", nargs="*", default=[], help="overrides for every config, e.g. data.seed=1")
    p.add_argument("--kimg", type=float, default=200.0)
    p.add_argument("--minutes", type=float, default=0.0, help="train for this long instead of --kimg")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once")
    p.add_argument("--n", type=int, default=1000, help="test scenes")
    p.add_argument("--runs", nargs="+", help="score these trained runs instead of training the configs")
    p.add_argument("--out", default="runs/bench-trajectories")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in args.runs] if args.runs else train_all(args, out)
    rows = [score(run, args) for run in runs]
    for r in rows:
        print(json.dumps(r), flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{args.n} test scenes; best of {rows[0]['samples']} samples per scene, {args.threads} thread(s) per run")
    print("| model | kimg | train min | ADE / FDE, best of 20 (m) | ADE / FDE, 1 sample (m) "
          "| spread of the 20 ends (m) |")
    print("|---|---|---|---|---|---|")
    cv = rows[0]
    print(f"| constant velocity | | | {cv['ade_constant_velocity']:.3f} / {cv['fde_constant_velocity']:.3f} | "
          f"{cv['ade_constant_velocity']:.3f} / {cv['fde_constant_velocity']:.3f} | 0 |")
    for r in rows:
        print(f"| {r['model']} | {r['kimg']:.0f} | {r['train_s'] / 60:.1f} | {r['ade_best']:.3f} / "
              f"{r['fde_best']:.3f} | {r['ade_one']:.3f} / {r['fde_one']:.3f} | {r['spread']:.2f} |")
    figure(rows, out / "trajectories.png")
    print(f"results and figure in {out}")


if __name__ == "__main__":
    main()
