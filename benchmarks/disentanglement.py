"""Latent space on sprites: does beta > 1 disentangle at a CPU budget, and how well does GAN inversion work?

Trains a conv_vae (10 latents, 32 channels, Bernoulli decoder, Adam 1e-3, batch 64) on the
embedded grey 32-pixel sprites (20,000 training images) once per beta and seed, stopping at each
kimg of ``--at`` to score it (so one run gives the curve against kimg), then scores the posterior means of a fresh 10,000-image test split against its ground-truth
factors (MIG, SAP; genlab.metrics.disentanglement) and reports the reconstruction cost: the
Bernoulli negative log-likelihood of the posterior-mean reconstruction and its pixel MSE, the KL,
and the active dimensions (Burda et al. 2016: Cov_x E_q[z_j] > 0.01). Then it trains a small DCGAN
on the same sprites and inverts 64 of its own samples (which an exact latent reproduces) and 64
real test sprites, reporting the error and the seconds per image on this CPU. Results and the
published reference: docs/benchmarks.md, "Latent space and disentanglement (issue 9)".

    python benchmarks/disentanglement.py [--betas 1 4] [--seeds 0] [--at 150] [--gan-kimg 40] [--threads 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

import torch

import genlab
from genlab.config import Config, config_from_dict
from genlab.data import load_dataset
from genlab.latent.encode import encode_dataset
from genlab.latent.invert import invert
from genlab.gaussians import kl_divergence
from genlab.losses.vae import decoder_log_likelihood
from genlab.metrics.disentanglement import mig, sap
from genlab.plotting import draw_lines

SPRITES = {"name": "sprites", "image_size": 32}  # grey, 20,000 training images, factors of dSprites


def make_config(
    name: str, model: dict, objective: dict, kimg: float, threads: int, out_dir: str, seed: int = 0
) -> Config:
    return config_from_dict(
        {
            "name": name,
            "data": SPRITES,
            "model": model,
            "objective": objective,
            "train": {
                "kimg": kimg,
                "batch_size": 64,
                "seed": seed,
                "threads": threads,
                "log_every_kimg": kimg / 5,
                "out_dir": out_dir,
                "snapshot_every_kimg": 0,
                "checkpoint_every_kimg": 0,
                "progress_bar": False,
                "tensorboard": False,
            },
        }
    )


def vae_curve(beta: float, seed: int, at_kimg: list[float], threads: int, n_score: int, out_dir: str) -> list[dict]:
    """One run per (beta, seed), scored at each of ``at_kimg``: it stops there (with a checkpoint), is
    scored from its export, and resumes; the learning rate is constant, so a stop changes nothing."""
    model = {"name": "conv_vae", "latent_dim": 10, "channels": 32, "likelihood": "bernoulli"}
    objective = {"name": "vae", "beta": beta, "lr": 1e-3}
    config = make_config(f"sprites-vae-beta{beta:g}-seed{seed}", model, objective, max(at_kimg), threads, out_dir, seed)
    data = load_dataset(dataclasses.replace(config.data, n_test=n_score), "test")
    rows, run_dir, train_seconds = [], None, 0.0
    for kimg in sorted(at_kimg):
        start = time.perf_counter()
        run_dir = genlab.train(config, resume=run_dir, stop_after_kimg=kimg)
        train_seconds += time.perf_counter() - start
        rows.append(
            {
                "beta": beta,
                "seed": seed,
                "kimg": kimg,
                "train_seconds": round(train_seconds, 1),
                "run": str(run_dir),
                **score(genlab.load(run_dir), data, n_score),
            }
        )
    return rows


def score(vae, data, n_score: int) -> dict:
    """MIG and SAP of the posterior means against the true factors, and the reconstruction's cost."""
    latents = encode_dataset(vae, data)
    x = data.batch(slice(0, n_score))["image"]
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        params = vae.decode_params(mu)
        recon_nll = -decoder_log_likelihood(vae.likelihood, params, x, vae.log_sigma).mean().item()
        mse = (vae.decode(mu) - x).square().mean().item()
        kl = kl_divergence(mu, logvar).mean().item()
    names = list(data.spec["factors"].names)
    return {
        **mig(latents, data["factors"], names),
        **sap(latents, data["factors"], names),
        "recon_nll_nats": recon_nll,
        "recon_mse": mse,
        "kl_nats": kl,
        "active_dims": int((latents.var(0) > 0.01).sum()),
    }


def gan_row(kimg: float, threads: int, n_images: int, steps: int, restarts: int, out_dir: str) -> dict:
    model = {"name": "dcgan", "latent_dim": 16, "g_channels": 32, "d_channels": 32}
    config = make_config("sprites-dcgan", model, {"name": "gan"}, kimg, threads, out_dir)  # Adam 2e-4, beta1 0.5, EMA G
    start = time.perf_counter()
    G = genlab.load(genlab.train(config))
    train_seconds = time.perf_counter() - start
    own = G.sample(n_images, generator=torch.Generator().manual_seed(123))
    real = load_dataset(config.data, "test").batch(slice(0, n_images))["image"]
    invert(G, own[:1], steps=2, restarts=1)  # the first backward pass pays a one-off setup cost
    row = {"gan_kimg": kimg, "gan_train_seconds": round(train_seconds, 1), "steps": steps, "restarts": restarts}
    for name, images in (("own_samples", own), ("real_sprites", real)):
        start = time.perf_counter()
        found = invert(G, images, steps=steps, restarts=restarts, generator=torch.Generator().manual_seed(0))
        row[f"{name}_seconds_per_image"] = (time.perf_counter() - start) / len(images)
        row[f"{name}_mse_median"] = found.mse.median().item()
        row[f"{name}_mse_max"] = found.mse.max().item()
    start = time.perf_counter()
    invert(G, real[:1], steps=steps, restarts=restarts)
    row["one_image_seconds"] = time.perf_counter() - start
    return row


def mean_std(values: list[float]) -> str:
    t = torch.tensor(values, dtype=torch.float64)
    return f"{t.mean():.3f} ± {t.std():.3f}" if len(values) > 1 else f"{t.mean():.3f}"


def draw(rows: list[dict], out: Path) -> None:
    """Two PNGs: each score against log2(beta) at the last kimg (a line per seed), and each score's
    seed mean against kimg (a line per beta), to show whether the curves have settled."""
    keys = {"MIG": "mig", "SAP": "sap", "reconstruction NLL (nats)": "recon_nll_nats", "KL (nats)": "kl_nats"}
    last = max(r["kimg"] for r in rows)
    betas, seeds = sorted({r["beta"] for r in rows}), sorted({r["seed"] for r in rows})
    kimgs = sorted({r["kimg"] for r in rows})
    by = {(r["beta"], r["seed"], r["kimg"]): r for r in rows}
    draw_lines(
        {
            title: {f"seed {s}": ([math.log2(b) for b in betas], [by[b, s, last][key] for b in betas]) for s in seeds}
            for title, key in keys.items()
        },
        f"log2(beta), at {last:g} kimg",
        out / "disentanglement-beta.png",
        legend="top-right",
    )
    draw_lines(
        {
            title: {
                f"beta {b:g}": (kimgs, [sum(by[b, s, k][key] for s in seeds) / len(seeds) for k in kimgs])
                for b in betas
            }
            for title, key in keys.items()
        },
        f"kimg (mean of {len(seeds)} seeds)",
        out / "disentanglement-kimg.png",
        legend="top-right",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--at", type=float, nargs="+", default=[150.0], help="kimg at which each VAE is scored")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--gan-kimg", type=float, default=40.0, help="0 skips GAN inversion")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-score", type=int, default=10_000, help="test sprites the scores use")
    parser.add_argument("--n-invert", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="folder for rows.json and the two PNGs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = tempfile.mkdtemp(prefix="genlab-bench-")
    out = args.out or Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for beta in args.betas:
        for seed in args.seeds:
            rows += vae_curve(beta, seed, args.at, args.threads, args.n_score, out_dir)
            (out / "rows.json").write_text(json.dumps(rows, indent=1))
            print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("per_factor")}), flush=True)
    last = max(args.at)
    print(f"\nat {last:g} kimg, mean ± sd over seeds {args.seeds}:")
    print("| beta | MIG | SAP | recon NLL (nats) | recon MSE | KL (nats) | active dims | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for beta in args.betas:
        group = [r for r in rows if r["beta"] == beta and r["kimg"] == last]
        cols = [
            mean_std([r[k] for r in group])
            for k in ("mig", "sap", "recon_nll_nats", "recon_mse", "kl_nats", "active_dims", "train_seconds")
        ]
        print(f"| {beta:g} | " + " | ".join(cols) + " |")
    for beta in args.betas:
        group = [r for r in rows if r["beta"] == beta and r["kimg"] == last]
        for metric in ("mig", "sap"):
            names = group[0][f"{metric}_per_factor"]
            print(
                f"beta {beta:g} {metric.upper()} per factor: "
                + ", ".join(f"{n} {mean_std([r[f'{metric}_per_factor'][n] for r in group])}" for n in names)
            )
    draw(rows, out)
    print(f"rows and figures in {out}")
    if args.gan_kimg <= 0:
        return
    gan = gan_row(args.gan_kimg, args.threads, args.n_invert, args.steps, args.restarts, out_dir)
    print("| inverted | median MSE | max MSE | s per image (batch of 64) |")
    print("|---|---|---|---|")
    for name in ("own_samples", "real_sprites"):
        print(
            f"| {name} | {gan[f'{name}_mse_median']:.2e} | {gan[f'{name}_mse_max']:.2e} "
            f"| {gan[f'{name}_seconds_per_image']:.3f} |"
        )
    print(f"one image alone: {gan['one_image_seconds']:.2f} s ({args.steps} steps x {args.restarts} restarts)")
    print(json.dumps({"gan": gan, "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
