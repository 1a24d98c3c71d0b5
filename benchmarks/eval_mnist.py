"""Evaluation figures on MNIST: the FID floor, recipes' FID and Parzen log-likelihood, speed.

- The floor: FID/KID/precision-recall in the digit classifier's feature space of the real
  test set against the real training set (what a perfect generator would score with
  10,000 samples), its MNIST score and class coverage.
- Parzen-window log-likelihood (Goodfellow et al. 2014 protocol) of 10,000 real training
  images and of each given run's samples, next to the 2014 table, with the 10k x 10k time.
- Each run passed with --runs (VAE, DCGAN, ...): FID/KID/PR/IS vs train, class coverage,
  Parzen, through `genlab.metrics.evaluate` (its eval card lands in RUN/eval/).
- Feature extraction speed in images per second (classifier; Inception when its weights
  are in the torch hub cache).

    PYTHONPATH=src python benchmarks/eval_mnist.py --data-root ../shared/data [--runs RUN ...] [--threads 1]

Needs a trained classifier (`genlab train-classifier`) or --classifier RUN.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from genlab.api import load
from genlab.data import load_dataset
from genlab.data.standard import StandardConfig
from genlab.errors import DataError
from genlab.metrics import coverage, fid, inception_score, kid, parzen, precision_recall
from genlab.metrics.classifier_features import classifier_accuracy, mnist_extractor
from genlab.metrics.evaluate import evaluate
from genlab.metrics.features import Extractor, extract_features
from genlab.metrics.inception import INCEPTION, inception_extractor, inception_resize_mode
from genlab.metrics.reference import reference_features
from genlab.metrics.settings import EvalSettings
from genlab.runs.folder import read_run


def extraction_speed(extractor: Extractor, images: torch.Tensor, batch_size: int) -> float:
    """Images per second through ``extractor`` (after one warm-up batch)."""
    extract_features(extractor, images[:batch_size], batch_size)
    start = time.perf_counter()
    extract_features(extractor, images, batch_size)
    return len(images) / (time.perf_counter() - start)


def random_inception() -> Extractor:
    """torch-fidelity's Inception-v3 with its initial random weights: the same compute, for timing."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as inception

    with mock.patch.object(inception, "load_state_dict_from_url", return_value={}), \
            mock.patch.object(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None):
        module = inception.FeatureExtractorInceptionV3(INCEPTION, ["2048", "logits_unbiased"])
    return Extractor(INCEPTION, module, Path("(random)"), "", {"fid": "2048"}, inception_resize_mode)


def floor(clf: Extractor, train: torch.Tensor, test: torch.Tensor, seed: int) -> None:
    t0 = time.perf_counter()
    ref = reference_features(clf, train, "mnist", "train")["features"]
    real = reference_features(clf, test, "mnist", "test")
    pick = torch.randperm(len(ref), generator=torch.Generator().manual_seed(seed))[: len(test)]
    print(f"\n== Floor: real test set (10,000) vs real train set (60,000), classifier features  [{time.perf_counter() - t0:.1f} s incl. extraction]")
    print(f"FID-MNIST  {fid.fid(real['features'], ref)['fid']:.4f}")
    k = kid.kid(real["features"], ref, seed=seed)
    print(f"KID        {k['kid_mean']:.6f} +- {k['kid_std']:.6f}")
    pr = precision_recall.precision_recall(real["features"], ref[pick])
    print(f"precision  {pr['precision']:.4f}   recall {pr['recall']:.4f}   (vs 10,000 random training images)")
    score = inception_score.inception_score(real["logits"], seed=seed)
    print(f"MNIST score (IS with classifier logits)  {score['is_mean']:.4f} +- {score['is_std']:.4f}   (max 10)")
    cov = coverage.mode_coverage(coverage.mode_histogram(real["logits"].argmax(1), 10))
    print(f"classes covered {cov['modes_covered']}/10, KL to uniform {cov['kl_to_uniform']:.5f} nats")


def parzen_real(train: torch.Tensor, test: torch.Tensor) -> None:
    samples = parzen.to_parzen_space(train[:10_000])
    valid = parzen.to_parzen_space(train[50_000:][: parzen.PROTOCOL_VALID_SIZE])
    start = time.perf_counter()
    result = parzen.parzen_window(samples, valid, parzen.to_parzen_space(test))
    seconds = time.perf_counter() - start
    print("\n== Parzen-window log-likelihood on the MNIST test set (nats; Goodfellow et al. 2014 protocol)")
    for name, value in parzen.MNIST_REFERENCE.items():
        print(f"{name:<28} {value}   (2014 table)")
    print(f"{'real training images':<28} {result['parzen_ll']:.1f} +- {result['parzen_ll_se']:.1f}   "
          f"sigma {result['parzen_sigma']:.4f}   [{seconds:.1f} s: 10k samples x (1k valid x 10 sigmas + 10k test)]")


def evaluate_run(run: str, args: argparse.Namespace) -> None:
    run_dir, config, _ = read_run(run)
    if getattr(config.data, "root", "") is None:  # the run used the default root; read the shared copy
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=args.data_root))
    settings = EvalSettings(metrics=("fid", "kid", "is", "pr", "modes", "parzen"), n=args.n, features="mnist",
                            seed=args.seed, classifier=args.classifier)
    start = time.perf_counter()
    results, _ = evaluate(load(run_dir), config, settings, run_dir / "eval" / f"mnist-n{args.n}-seed{args.seed}", run=str(run_dir))
    print(f"\n== {run_dir.name} ({config.model.name}, {args.n} samples)  [{time.perf_counter() - start:.1f} s]")
    print(f"FID-MNIST  {results['fid']:.4f}   KID {results['kid_mean']:.6f} +- {results['kid_std']:.6f}")
    print(f"precision  {results['precision']:.4f}   recall {results['recall']:.4f}   MNIST score {results['is_mean']:.4f}")
    print(f"classes covered {results['modes_covered']}/10, KL to uniform {results['kl_to_uniform']:.5f}, histogram {results['mode_histogram']}")
    print(f"Parzen     {results['parzen_ll']:.1f} +- {results['parzen_ll_se']:.1f}   sigma {results['parzen_sigma']:.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--classifier", help="classifier run (default: the newest from genlab train-classifier)")
    p.add_argument("--runs", nargs="*", default=[], help="trained MNIST runs to evaluate")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    data = StandardConfig(name="mnist", root=args.data_root)
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    clf = mnist_extractor(args.classifier)
    print(f"classifier {clf.module.run_dir}  sha256 {clf.weights_sha256[:16]}  "
          f"test accuracy {classifier_accuracy(clf, test['image'], test['label']):.4f}   threads {args.threads}")
    print(f"feature extraction, classifier: {extraction_speed(clf, test['image'], 250):.0f} images/s (batch 250, 10,000 test images)")
    try:
        inception, note = inception_extractor(download=False), "FID weights"
    except DataError:
        inception, note = random_inception(), "random weights: the FID weights are not here offline; speed only"
    print(f"feature extraction, Inception-v3: {extraction_speed(inception, test['image'][:100], 25):.1f} images/s "
          f"(batch 25, 28 -> 299 px, {note})")

    floor(clf, train["image"], test["image"], args.seed)
    parzen_real(train["image"], test["image"])
    for run in args.runs:
        evaluate_run(run, args)


if __name__ == "__main__":
    main()
