"""genlab train-classifier: train the digit classifier behind the MNIST metrics.

Trains configs/mnist_classifier.yaml with the one training loop into genlab's cache
(where `genlab eval --features mnist` finds it), then reports its test accuracy.
"""

from __future__ import annotations

import argparse
import json

from genlab.api import train
from genlab.cli.common import add_data_root, load_cli_config, write_json
from genlab.data import load_dataset
from genlab.metrics.classifier_features import classifier_accuracy, classifier_dir, mnist_extractor

TARGET_ACCURACY = 0.99


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train-classifier", help="train the MNIST classifier used by the metrics", description=__doc__
    )
    p.add_argument("--config", default="configs/mnist_classifier.yaml", help="recipe (default: %(default)s)")
    p.add_argument(
        "--out", metavar="DIR", help=f"folder for the run (default: {classifier_dir()}, where the metrics look)"
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.kimg=60")
    add_data_root(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.set = [*list(args.set or []), f"train.out_dir={args.out or classifier_dir()}"]
    config = load_cli_config(args.config, args)
    run_dir = train(config)
    test = load_dataset(config.data, "test")
    accuracy = classifier_accuracy(mnist_extractor(run_dir), test["image"], test["label"])
    record = {"run": str(run_dir), "split": "test", "n_images": len(test), "accuracy": accuracy}
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    write_json(record, None)
    if accuracy < TARGET_ACCURACY:
        print(
            f"warning: test accuracy {accuracy:.4f} is below the {TARGET_ACCURACY:.0%} the metrics assume; "
            "train longer (--set train.kimg=...)"
        )
    return 0
