"""CycleGAN figures (issue 25, claim 5): train a CycleGAN recipe, then on the test split report
whether translations look like the other domain and keep their content.

    PYTHONPATH=src python benchmarks/cyclegan.py --data-root ../shared/data \\
        [--config configs/cyclegan_mnist2mnistm.yaml] [--kimg K] [--threads 2] [--run RUN] [--judges DIR]

- cycle error: mean |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b| on [-1, 1] test images; identity
  error: mean |G_AB(b) - b| and |G_BA(a) - a| (what the identity loss asks to be small);
- domain accuracy: genlab's ``mnist_classifier`` architecture (narrowed), trained through
  ``genlab.train`` to tell domain A from domain B on the training images, scores the real test
  images (how separable the domains are) and the translations, each counted right when
  classified as the domain it was translated into: G_AB(a) as B, G_BA(b) as A;
- content (when both domains carry labels, e.g. MNIST <-> MNIST-M): a digit classifier trained on
  each domain's labelled training images (genlab's digit classifier recipe, ``--classifier-kimg``
  long) reads the translations into its domain, scored against
  the source's labels. The control row "no translation" feeds each source image unchanged: it
  keeps the content trivially and fails the domain test, so a translation must beat it on the
  domain while keeping the content. For MNIST <-> MNIST-M, B→A's content is also split by the
  source's stroke contrast (strokes darker or brighter than the photo behind them), beside how
  often B's own classifier reads those sources.

Writes OUT/cyclegan-translations.png: for 8 test images of each side, the source, its
translation and its reconstruction, one row each (A rows first). With ``--every K`` every K-kimg
checkpoint is scored too: content kept against kimg, a table and OUT/cyclegan-content.png. Prints Markdown tables; the
runs land under --out.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from genlab.api import load, train
from genlab.config import Config, config_from_dict, load_config
from genlab.data.pairs import image_key
from genlab.data.tensors import save_tensors
from genlab.images import save_grid, to_model, to_uint8
from genlab.plotting import draw_lines
from genlab.registry import DATASETS
from genlab.runs.checkpoint import kimg_of, latest_checkpoint, list_checkpoints
from genlab.runs.folder import newest_run_dir

CONFIG = "configs/cyclegan_mnist2mnistm.yaml"
DOMAIN_CLASSIFIER = {"name": "mnist_classifier", "channels": 8, "feature_dim": 32, "dropout": 0.2}
# The digit classifiers: genlab's own (configs/mnist_classifier.yaml), one per labelled domain.
DIGIT_CLASSIFIER = {"name": "mnist_classifier", "channels": 32, "feature_dim": 128, "dropout": 0.2}
BATCH = 500  # test images per forward pass


def train_classifier(images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], model: dict, out: Path,
                     kimg: float, threads: int) -> Path:
    """A classifier run on uint8 ``images`` with int ``labels``, through genlab's one loop."""
    out.mkdir(parents=True, exist_ok=True)
    path = save_tensors(out / "train.safetensors", images, labels, classes=classes)
    return train(config_from_dict({
        "name": out.name, "data": {"name": "tensors", "path": str(path)}, "model": model,
        "objective": {"name": "classifier"},
        "train": {"kimg": kimg, "batch_size": 128, "lr_schedule": {"kind": "cosine"}, "threads": threads, "out_dir": str(out), "progress_bar": False,
                  "tensorboard": False, "log_every_kimg": kimg / 4, "snapshot_every_kimg": 0,
                  "checkpoint_every_kimg": 0}}))


def domains(config: Config, split: str) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Each domain's uint8 images (grey replicated to RGB beside an RGB domain, as the unpaired data
    does) and labels, if both domains have the same classes."""
    built = [DATASETS.get(sub.name).builder(sub, split) for sub in (config.data.a, config.data.b)]
    images = [data[image_key(data.spec, data.name)] for data in built]
    channels = max(x.shape[1] for x in images)
    # Labels count only when both domains name the same classes (the digits of MNIST and MNIST-M;
    # not a sprite's shape against a digit).
    same = all("label" in d.spec for d in built) and built[0].spec["label"] == built[1].spec["label"]
    return [(x.expand(-1, channels, -1, -1).contiguous(), data.fields["label"] if same else None)
            for x, data in zip(images, built)]


@torch.no_grad()
def batched(fn, x: torch.Tensor) -> torch.Tensor:
    """``fn`` over uint8 images in batches, on the model's [-1, 1] scale; results as returned."""
    return torch.cat([fn(to_model(x[i : i + BATCH])) for i in range(0, len(x), BATCH)])


def accuracy(classifier, images: torch.Tensor, labels: torch.Tensor | int) -> float:
    """Top-1 accuracy of ``classifier`` on uint8 ``images`` against ``labels`` (one int: all of that class)."""
    return (batched(classifier, images).argmax(1) == labels).float().mean().item()


# Bins of a source's stroke contrast: mean luma on the digit's strokes minus on its background.
CONTRAST_BINS = (-1.0, -0.3, -0.1, 0.1, 0.3, 1.0)


def stroke_contrast(images: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """Per image, the mean luma (0-1) where ``digits`` (uint8 [N, 1, S, S], MNIST) has strokes (> 0.5)
    minus where it is blank (< 0.05): negative where an MNIST-M digit is darker than its photo."""
    luma, ink = images.float().mean(1, keepdim=True) / 255, digits.float() / 255
    stroke, blank = (ink > 0.5).float(), (ink < 0.05).float()
    return (luma * stroke).sum((1, 2, 3)) / stroke.sum((1, 2, 3)) - (luma * blank).sum((1, 2, 3)) / blank.sum((1, 2, 3))


def content_by_contrast(kept: torch.Tensor, readable: torch.Tensor, contrast: torch.Tensor) -> None:
    """A table, in each bin of the sources' stroke contrast, of the content kept by B→A and of the sources that
    B's own digit classifier reads right (bools per source): whether a bin is hard to translate or to read."""
    print("\n| source's stroke contrast (luma, stroke minus background) | images | B's classifier reads the source "
          "| content kept B→A |\n|---|---|---|---|")
    for low, high in itertools.pairwise(CONTRAST_BINS):
        inside = (contrast >= low) & (contrast < high)
        if inside.any():
            print(f"| [{low:+.1f}, {high:+.1f}) | {int(inside.sum())} | {readable[inside].float().mean().item():.3f} | "
                  f"{kept[inside].float().mean().item():.3f} |")


def content_curve(run_dir: Path, test_a: tuple, test_b: tuple, digit_classifiers: tuple, out: Path) -> None:
    """Content kept (A→B and B→A) at every checkpoint of the run: a table and OUT/cyclegan-content.png."""
    (a, labels_a), (b, labels_b), (digits_a, digits_b) = test_a, test_b, digit_classifiers
    kimgs, ab, ba = [], [], []
    for checkpoint in list_checkpoints(run_dir / "checkpoints"):
        G_AB, G_BA = load(run_dir, checkpoint=checkpoint), load(run_dir, checkpoint=checkpoint, role="G_BA")
        kimgs.append(kimg_of(checkpoint))
        ab.append(accuracy(digits_b, to_uint8(batched(G_AB.translate, a)), labels_a))
        ba.append(accuracy(digits_a, to_uint8(batched(G_BA.translate, b)), labels_b))
    print("\n| kimg | " + " | ".join(f"{k:g}" for k in kimgs) + " |\n|---|" + "---|" * len(kimgs))
    print("| content kept A→B | " + " | ".join(f"{x:.3f}" for x in ab) + " |")
    print("| content kept B→A | " + " | ".join(f"{x:.3f}" for x in ba) + " |")
    title = "content kept (digit classifier of the target domain)"
    draw_lines({title: {"A to B": (kimgs, ab), "B to A": (kimgs, ba)}}, "training kimg", out / "cyclegan-content.png",
               ylims={title: (0.0, 1.0)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding MNIST/raw/*.gz")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--kimg", type=float, help="CycleGAN training length (default: the config's)")
    parser.add_argument("--classifier-kimg", type=float, default=60.0, help="each digit classifier's training")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-cyclegan")
    parser.add_argument("--run", help="score this trained run of --config instead of training one")
    parser.add_argument("--every", type=float, default=0, help="checkpoint every K kimg and score each; 0: the end only")
    parser.add_argument("--judges", help="the --out folder of an earlier run of this script on the same --config: score "
                        "with the classifiers it trained instead of training them again")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # the figures' folder, even when --run and --judges train nothing

    plain = load_config(args.config)
    roots = [f"data.{s}.root={args.data_root}" for s in ("a", "b") if hasattr(getattr(plain.data, s), "root")]
    kimg = args.kimg or plain.train.kimg
    config = load_config(args.config, [
        *roots, f"train.out_dir={out}", "train.progress_bar=false", f"train.threads={args.threads}",
        f"train.kimg={kimg}", f"train.lr_schedule.decay_start_kimg={kimg / 2}",
        f"train.snapshot_every_kimg={kimg / 4}", f"train.checkpoint_every_kimg={args.every or kimg / 2}",
        "train.keep_checkpoints=1000", *args.set])
    start = time.perf_counter()
    run_dir = Path(args.run) if args.run else train(config)
    seconds = time.perf_counter() - start

    (train_a, labels_a), (train_b, labels_b) = domains(config, "train")
    (a, test_labels_a), (b, test_labels_b) = domains(config, "test")
    n = min(len(train_a), len(train_b))
    both = torch.cat([train_a[:n], train_b[:n]]), torch.cat([torch.zeros(n), torch.ones(n)])
    def judge(name: str, kimg: float, images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...],
              model: dict) -> torch.nn.Module:
        """The classifier run ``name``: trained here for ``kimg``, or the newest under --judges."""
        if not args.judges:
            return load(train_classifier(images, labels, classes, model, out / name, kimg, args.threads))
        newest = newest_run_dir(Path(args.judges) / name)
        if newest is None:
            raise SystemExit(f"--judges {args.judges} holds no {name} run; leave out --judges to train one")
        return load(newest)

    domain_clf = judge("domain-classifier", 8.0, *both, ("A", "B"), DOMAIN_CLASSIFIER)
    G_AB, G_BA = load(run_dir), load(run_dir, role="G_BA")
    fake_b, fake_a = (to_uint8(batched(G.translate, x)) for G, x in ((G_AB, a), (G_BA, b)))
    rec_a, rec_b = to_uint8(batched(G_BA.translate, fake_b)), to_uint8(batched(G_AB.translate, fake_a))

    def l1(x: torch.Tensor, y: torch.Tensor) -> float:
        return (to_model(x) - to_model(y)).abs().mean().item()

    print("| kimg | train s | cycle A→B→A | cycle B→A→B | identity G_AB(b) / G_BA(a) | domain acc. real A / B | "
          "G_AB(a) as B | G_BA(b) as A |")
    print("|---|---|---|---|---|---|---|---|")
    identity_b, identity_a = l1(to_uint8(batched(G_AB.translate, b)), b), l1(to_uint8(batched(G_BA.translate, a)), a)
    print(f"| {kimg_of(latest_checkpoint(run_dir)):g} | {seconds:.0f} | {l1(rec_a, a):.3f} | {l1(rec_b, b):.3f} | {identity_b:.3f} / {identity_a:.3f} | "
          f"{accuracy(domain_clf, a, 0):.3f} / {accuracy(domain_clf, b, 1):.3f} | "
          f"{accuracy(domain_clf, fake_b, 1):.3f} | {accuracy(domain_clf, fake_a, 0):.3f} |")
    if labels_a is not None and labels_b is not None:
        classes = tuple(str(k) for k in range(int(max(labels_a.max(), labels_b.max())) + 1))
        digits_a = judge("digits-A", args.classifier_kimg, train_a, labels_a, classes, DIGIT_CLASSIFIER)
        digits_b = judge("digits-B", args.classifier_kimg, train_b, labels_b, classes, DIGIT_CLASSIFIER)
        # Per B source: read right in its own domain, and its digit kept by G_BA (the table's B columns, and
        # the stroke-contrast split below).
        readable = batched(digits_b, b).argmax(1) == test_labels_b
        kept = batched(digits_a, fake_a).argmax(1) == test_labels_b
        print("\n| images | content: class kept, A→B / B→A | judged the target domain, A→B / B→A |")
        print("|---|---|---|")
        print(f"| real test images, each in its own domain (the classifiers' ceiling) | "
              f"{accuracy(digits_a, a, test_labels_a):.3f} / {readable.float().mean().item():.3f} | |")
        print(f"| no translation (control: source fed as is) | {accuracy(digits_b, a, test_labels_a):.3f} / "
              f"{accuracy(digits_a, b, test_labels_b):.3f} | {accuracy(domain_clf, a, 1):.3f} / "
              f"{accuracy(domain_clf, b, 0):.3f} |")
        print(f"| CycleGAN translations | {accuracy(digits_b, fake_b, test_labels_a):.3f} / "
              f"{kept.float().mean().item():.3f} | {accuracy(domain_clf, fake_b, 1):.3f} / "
              f"{accuracy(domain_clf, fake_a, 0):.3f} |")
        if config.data.a.name == "mnist" and config.data.b.name == "mnist_m":
            # MNIST-M's test images are MNIST's test digits over photos, in the same order: a's strokes
            # are b's. Where does G_BA lose the digit?
            content_by_contrast(kept, readable, stroke_contrast(b, a[:, :1]))
        if args.every:
            content_curve(run_dir, (a, test_labels_a), (b, test_labels_b), (digits_a, digits_b), out)
    rows = [a[:8], fake_b[:8], rec_a[:8], b[:8], fake_a[:8], rec_b[:8]]
    save_grid(to_model(torch.cat(rows)), out / "cyclegan-translations.png", nrow=8)
    print(f"\nrun: {run_dir}; figure: {out / 'cyclegan-translations.png'}")


if __name__ == "__main__":
    main()
