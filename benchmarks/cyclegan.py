"""CycleGAN figures: train configs/cyclegan_sprites2mnist.yaml for a short budget, then on the
test split report the cycle errors and a domain classifier's accuracy on the translations.

    PYTHONPATH=src python benchmarks/cyclegan.py --data-root ../shared/data [--kimg 6] [--threads 2]

- cycle error: mean |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b| on [-1, 1] images (the
  training stats cycle_ABA / cycle_BAB, here on held-out images);
- domain accuracy: genlab's mnist_classifier architecture (narrowed), trained through
  genlab.train to tell domain A from domain B on the training images, scores the real test
  images (how separable the domains are) and the translations, each counted right when
  classified as the domain it was translated into: G_AB(a) as B, G_BA(b) as A.

The learning-rate decay starts at half of --kimg, as in the config. Prints one Markdown
table; the runs land under --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from genlab.api import load, train
from genlab.config import config_from_dict, load_config
from genlab.data import load_dataset
from genlab.data.tensors import save_tensors

CONFIG = "configs/cyclegan_sprites2mnist.yaml"
CLASSIFIER = {"name": "mnist_classifier", "channels": 8, "feature_dim": 32, "dropout": 0.2}
BATCH = 500  # test images per forward pass


def train_domain_classifier(a: torch.Tensor, b: torch.Tensor, out: Path, kimg: float, threads: int) -> Path:
    """A 2-class classifier run (0: domain A, 1: domain B) on uint8 images of both domains."""
    out.mkdir(parents=True, exist_ok=True)
    path = save_tensors(out / "domains.safetensors", torch.cat([a, b]),
                        torch.cat([torch.zeros(len(a)), torch.ones(len(b))]), classes=("A", "B"))
    return train(config_from_dict({
        "name": "domain-classifier", "data": {"name": "tensors", "path": str(path)}, "model": CLASSIFIER,
        "objective": {"name": "classifier"},
        "train": {"kimg": kimg, "batch_size": 64, "threads": threads, "out_dir": str(out), "progress_bar": False,
                  "tensorboard": False, "log_every_kimg": kimg / 4, "snapshot_every_kimg": 0,
                  "checkpoint_every_kimg": 0}}))


@torch.no_grad()
def batched(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding MNIST/raw/*.gz")
    parser.add_argument("--kimg", type=float, default=6.0, help="CycleGAN training length (the config's: 40)")
    parser.add_argument("--classifier-kimg", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-cyclegan")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    config = load_config(CONFIG, [
        f"data.b.root={args.data_root}", "data.b.download=false", f"train.out_dir={out}", "train.progress_bar=false",
        f"train.threads={args.threads}", f"train.kimg={args.kimg}",
        f"train.lr_schedule.decay_start_kimg={args.kimg / 2}",
        f"train.snapshot_every_kimg={args.kimg / 4}", f"train.checkpoint_every_kimg={args.kimg / 2}"])
    start = time.perf_counter()
    run_dir = train(config)
    seconds = time.perf_counter() - start

    trainset, test = load_dataset(config.data, "train"), load_dataset(config.data, "test")
    classifier_run = train_domain_classifier(trainset["a"], trainset["b"], out / "classifier", args.classifier_kimg,
                                             args.threads)
    classifier = load(classifier_run)
    G_AB, G_BA = load(run_dir), load(run_dir, role="G_BA")
    batch = test.batch(slice(None))
    a, b = batch["a"], batch["b"]
    fake_b, fake_a = batched(G_AB.translate, a), batched(G_BA.translate, b)
    cycle_a = (batched(G_BA.translate, fake_b) - a).abs().mean().item()
    cycle_b = (batched(G_AB.translate, fake_a) - b).abs().mean().item()

    def accuracy(images: torch.Tensor, domain: int) -> float:
        return (batched(classifier, images).argmax(1) == domain).float().mean().item()

    print("| kimg | train s | cycle A->B->A | cycle B->A->B | domain acc. real A / B | G_AB(a) as B | G_BA(b) as A |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.kimg:g} | {seconds:.0f} | {cycle_a:.3f} | {cycle_b:.3f} | "
          f"{accuracy(a, 0):.3f} / {accuracy(b, 1):.3f} | {accuracy(fake_b, 1):.3f} | {accuracy(fake_a, 0):.3f} |")
    print(f"run: {run_dir} (samples/translations_*-latest.png); classifier: {classifier_run}")


if __name__ == "__main__":
    main()
