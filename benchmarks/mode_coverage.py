"""Mode coverage of a vanilla GAN on the ring of 8 and the grid of 25 Gaussians (PacGAN protocol).

Each recipe (``configs/toy_ring_gan.yaml``, ``configs/toy_grid_gan.yaml``) is trained by the one
training loop for every seed; G's 2,500 samples are scored by ``genlab.metrics.modes``: modes
covered (at least one sample within 3 sigma) and the share of high-quality samples, as mean and
standard error over the seeds, beside the published vanilla-GAN reference (PacGAN Table 1, mean of
10 runs of 400 epochs of 100k points: 6.3 of 8 modes on the ring, 17.3 of 25 on the grid).
Writes a scatter PNG (rows: data sets, columns: seeds) and a JSON of every run.

    PYTHONPATH=src python benchmarks/mode_coverage.py [--seeds 0 1 2] [--kimg K] [--datasets ring grid]
        [--out runs/mode_coverage] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import genlab
from genlab.config import load_config
from genlab.data.toy import mixture_modes
from genlab.metrics import coverage
from genlab.metrics.modes import EVAL_SAMPLES, KEY_HIGH_QUALITY, THRESHOLD, mean_and_stderr, mixture_mode_coverage, nearest_modes
from genlab.plotting import Panel, font

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"ring": ROOT / "configs" / "toy_ring_gan.yaml", "grid": ROOT / "configs" / "toy_grid_gan.yaml"}
PUBLISHED_MODES = {"ring": 6.3, "grid": 17.3}  # vanilla GAN, PacGAN (Lin et al. 2018) Table 1
PANEL, GAP, MARGIN = 300, 60, 70


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=sorted(RECIPES), default=["ring", "grid"])
    parser.add_argument("--kimg", type=float, default=None, help="override the recipes' training length")
    parser.add_argument("--out", default="runs/mode_coverage")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny MLPs: 1 is fastest)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    results: dict[str, list[dict]] = {}
    samples: dict[str, list[np.ndarray]] = {}
    modes: dict[str, tuple[np.ndarray, float]] = {}
    for name in args.datasets:
        results[name], samples[name] = [], []
        for seed in args.seeds:
            overrides = [f"train.seed={seed}", f"data.seed={seed}", f"train.out_dir={out / 'runs'}"]
            if args.kimg is not None:
                overrides.append(f"train.kimg={args.kimg}")
            config = load_config(RECIPES[name], overrides)
            start = time.perf_counter()
            run_dir = genlab.train(config)
            seconds = time.perf_counter() - start
            G = genlab.load(run_dir)
            points = G.sample(EVAL_SAMPLES, generator=torch.Generator().manual_seed(seed)).numpy()
            centers, sigma = modes[name] = mixture_modes(config.data)
            scores = mixture_mode_coverage(points, centers, sigma)
            results[name].append({"seed": seed, "run": str(run_dir), "kimg": config.train.kimg,
                                  "train_seconds": seconds, **scores})
            samples[name].append(points)
            print(f"{name} seed {seed}: {scores[coverage.KEY_MODES_COVERED]}/{scores[coverage.KEY_NUM_MODES]} modes, "
                  f"{100 * scores[KEY_HIGH_QUALITY]:.1f}% high quality, KL to uniform "
                  f"{scores[coverage.KEY_KL_UNIFORM]:.3f}  ({config.train.kimg:g} kimg in {seconds:.0f} s)", flush=True)

    summary = summarise(results)
    print()
    print(format_table(summary, len(args.seeds)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "mode_coverage.json").write_text(json.dumps({"summary": summary, "runs": results}, indent=2) + "\n")
    png = draw_scatter(samples, modes, args.seeds, out / "mode_coverage.png")
    print(f"\nwrote {png} and {out / 'mode_coverage.json'}")


def summarise(results: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    for name, runs in results.items():
        modes = mean_and_stderr([r[coverage.KEY_MODES_COVERED] for r in runs])
        quality = mean_and_stderr([100 * r[KEY_HIGH_QUALITY] for r in runs])
        kl = mean_and_stderr([r[coverage.KEY_KL_UNIFORM] for r in runs])
        summary[name] = {"modes_covered": modes, "num_modes": runs[0][coverage.KEY_NUM_MODES],
                         "high_quality_percent": quality, "kl_to_uniform": kl,
                         "published_vanilla_gan_modes": PUBLISHED_MODES[name], "kimg": runs[0]["kimg"]}
    return summary


def format_table(summary: dict[str, dict], seeds: int) -> str:
    def pm(pair: tuple[float, float], digits: int) -> str:
        mean, se = pair
        return f"{mean:.{digits}f} ± {se:.{digits}f}" if not math.isnan(se) else f"{mean:.{digits}f}"

    rows = [f"mode coverage, mean ± s.e. over {seeds} seed(s), {EVAL_SAMPLES} samples, high quality within {THRESHOLD:g} sigma",
            f"{'data':<6}{'kimg':>8}{'modes covered':>18}{'published GAN':>15}{'% high quality':>18}{'KL to uniform':>18}"]
    for name, s in summary.items():
        rows.append(f"{name:<6}{s['kimg']:>8g}{pm(s['modes_covered'], 1) + ' / ' + str(s['num_modes']):>18}"
                    f"{s['published_vanilla_gan_modes']:>15}{pm(s['high_quality_percent'], 1):>18}{pm(s['kl_to_uniform'], 3):>18}")
    return "\n".join(rows)


def draw_scatter(samples: dict[str, list[np.ndarray]], modes: dict[str, tuple[np.ndarray, float]], seeds: list[int],
                 path: Path) -> Path:
    """One panel per (data set, seed): high-quality samples green, the rest grey, 3-sigma rings red."""
    names = list(samples)
    width = max(MARGIN + len(seeds) * (PANEL + GAP), 640)
    image = Image.new("RGB", (width, MARGIN + len(names) * (PANEL + GAP)), "white")
    ImageDraw.Draw(image).text((MARGIN, 10), "green: within 3 sigma of its nearest mode, grey: farther; red rings: 3 sigma",
                               fill=(0, 0, 0), font=font(14))
    for row, name in enumerate(names):
        centers, sigma = modes[name]
        reach = float(np.abs(centers).max()) + 1.5
        for col, (seed, points) in enumerate(zip(seeds, samples[name])):
            left, top = MARGIN + col * (PANEL + GAP), MARGIN + row * (PANEL + GAP)
            panel = Panel(image, (left, top, left + PANEL, top + PANEL), (-reach, reach), (-reach, reach), f"{name}, seed {seed}")
            panel.axes()
            _, distance = nearest_modes(points, centers)
            good = distance < THRESHOLD * sigma
            panel.points(points[~good, 0], points[~good, 1], (170, 170, 170), radius=1)
            panel.points(points[good, 0], points[good, 1], (20, 140, 60), radius=1)
            ring = max(3, THRESHOLD * sigma * PANEL / (2 * reach))  # 3 sigma in pixels, at least visible
            panel.points(centers[:, 0], centers[:, 1], (200, 40, 40), radius=ring, filled=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


if __name__ == "__main__":
    main()
