"""Latent space on sprites: does beta > 1 disentangle at a CPU budget, and how well does GAN inversion work?

Trains a conv_vae (10 latents, 32 channels, Bernoulli decoder, Adam 1e-3, batch 64) on the
embedded grey 32-pixel sprites (20,000 training images) once per beta with the same budget and
seed, then scores the posterior means of a fresh 10,000-image test split against its ground-truth
factors (MIG, SAP; genlab.metrics.disentanglement) and reports the reconstruction cost: the
Bernoulli negative log-likelihood of the posterior-mean reconstruction and its pixel MSE, the KL,
and the active dimensions (Burda et al. 2016: Cov_x E_q[z_j] > 0.01). Then it trains a small DCGAN
on the same sprites and inverts 64 of its own samples (which an exact latent reproduces) and 64
real test sprites, reporting the error and the seconds per image on this CPU. Results and the
published reference: docs/benchmarks.md, "Latent space and disentanglement (issue 9)".

    python benchmarks/disentanglement.py [--kimg 150] [--betas 1 4] [--gan-kimg 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch

import genlab
from genlab.config import Config, config_from_dict
from genlab.data import load_dataset
from genlab.latent.encode import encode_dataset
from genlab.latent.invert import invert
from genlab.losses.vae import decoder_log_likelihood, kl_divergence
from genlab.metrics.disentanglement import mig, sap

SPRITES = {"name": "sprites", "image_size": 32}  # grey, 20,000 training images, factors of dSprites


def make_config(name: str, model: dict, objective: dict, kimg: float, threads: int, out_dir: str) -> Config:
    return config_from_dict({
        "name": name, "data": SPRITES, "model": model, "objective": objective,
        "train": {"kimg": kimg, "batch_size": 64, "seed": 0, "threads": threads, "log_every_kimg": kimg / 5,
                  "out_dir": out_dir, "snapshot_every_kimg": 0, "checkpoint_every_kimg": 0, "progress_bar": False,
                  "tensorboard": False},
    })


def vae_row(beta: float, kimg: float, threads: int, n_score: int, out_dir: str) -> dict:
    model = {"name": "conv_vae", "latent_dim": 10, "channels": 32, "likelihood": "bernoulli"}
    objective = {"name": "vae", "beta": beta, "lr": 1e-3}
    config = make_config(f"sprites-vae-beta{beta:g}", model, objective, kimg, threads, out_dir)
    start = time.perf_counter()
    run_dir = genlab.train(config)
    train_seconds = time.perf_counter() - start
    vae = genlab.load(run_dir)
    data = load_dataset(dataclasses.replace(config.data, n_test=n_score), "test")
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
        "beta": beta, "kimg": kimg, "train_seconds": round(train_seconds, 1), "run": str(run_dir),
        **mig(latents, data["factors"], names), **sap(latents, data["factors"], names),
        "recon_nll_nats": recon_nll, "recon_mse": mse, "kl_nats": kl,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--kimg", type=float, default=150.0, help="VAE training length per beta")
    parser.add_argument("--gan-kimg", type=float, default=40.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-score", type=int, default=10_000, help="test sprites the scores use")
    parser.add_argument("--n-invert", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--restarts", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = tempfile.mkdtemp(prefix="genlab-bench-")
    rows = [vae_row(beta, args.kimg, args.threads, args.n_score, out_dir) for beta in args.betas]
    print("| beta | MIG | SAP | recon NLL (nats) | recon MSE | KL (nats) | active dims | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['beta']:g} | {r['mig']:.3f} | {r['sap']:.3f} | {r['recon_nll_nats']:.1f} | {r['recon_mse']:.4f} "
              f"| {r['kl_nats']:.1f} | {r['active_dims']} | {r['train_seconds']:.0f} |")
    for r in rows:
        print(f"beta {r['beta']:g} MIG per factor: " + ", ".join(f"{k} {v:.3f}" for k, v in r["mig_per_factor"].items()))
        print(f"beta {r['beta']:g} SAP per factor: " + ", ".join(f"{k} {v:.3f}" for k, v in r["sap_per_factor"].items()))
    gan = gan_row(args.gan_kimg, args.threads, args.n_invert, args.steps, args.restarts, out_dir)
    print("| inverted | median MSE | max MSE | s per image (batch of 64) |")
    print("|---|---|---|---|")
    for name in ("own_samples", "real_sprites"):
        print(f"| {name} | {gan[f'{name}_mse_median']:.2e} | {gan[f'{name}_mse_max']:.2e} "
              f"| {gan[f'{name}_seconds_per_image']:.3f} |")
    print(f"one image alone: {gan['one_image_seconds']:.2f} s ({args.steps} steps x {args.restarts} restarts)")
    print(json.dumps({"vae": rows, "gan": gan, "threads": torch.get_num_threads()}, indent=2))


if __name__ == "__main__":
    main()
