"""StyleGAN's style mixing, measured (issue 25, claim 1): which attributes of a mixed image come from
which parent, read by a judge; how surely it reads the samples' shapes; and truncation in W against
precision and recall.

    PYTHONPATH=src python benchmarks/style_mixing.py [--run zoo:stylegan-sprites] [--checkpoint CKPT]
        [--classifier zoo:sprites-attributes] [--pairs 2000] [--n 2000] [--psi 1 0.8 0.6 0.4 0.2]
        [--threads 2] [--out runs/bench-style-mixing]

The judge: on sprites, the attribute classifier (shape, size, colour, position, rotation); on
digits (a run on MNIST, with ``--classifier zoo:mnist-classifier``), the digit classifier's digit
and the stroke: whether an image has more ink (pixels above mid-grey) than the median real test
digit, a fine style.

1. Inheritance: for --pairs pairs of latents (A, B) and every crossover c, the mix takes A's w for
   layers before c (coarse: the low resolutions) and B's from c on. Per attribute, among the pairs
   whose parents the classifier reads differently, the fraction of mixes read with A's value and
   with B's. Karras et al. (2019, section 3.1) find coarse styles carry pose and shape, fine ones
   colour: at a crossover after the coarse layers, shape, size and position should follow A and
   colour B. The control row puts an independent third sample in the mix's place: what agreement
   with a parent looks like by chance. "Image change": the mixes' mean pixel distance from A as a
   fraction of B's (0: B's layers change nothing; 1: as far as B).
2. Confidence: the fraction of samples whose shape (digit) the classifier reads with probability
   >= 0.9, beside the same fraction on real test images.
3. Truncation in W (psi): FID, precision and recall in the classifier's features against --n real
   test sprites (the run's own data); truncation should raise precision and lower recall.
4. Resolution shares (Karras et al. 2020, Figure 8): how much of the images' spread each resolution's
   toRGB output holds, for the run and, with ``--shares-over CKPT ...``, for each of its checkpoints.
   Fine styles can only change what the fine resolutions draw: where 4-8 px hold most of the image,
   colour cannot come from B's 16-32 px styles.
5. D's overfitting (Karras et al. 2020b, "ADA"): D's mean logit and r_t = E[sign D(x)] on --n training
   and --n held-out images. Where they agree, D has not memorised its training set, and augmenting
   D's inputs (ADA, DiffAugment), the cure for that, is not what the run lacks.

Writes OUT/style-mixing.png (a mixing grid at the first crossover whose fine layers start at 16 px),
OUT/style-mixing-inheritance.png (fraction from A against crossover, per attribute) and
OUT/style-truncation.png (and OUT/style-resolution-shares.png with --shares-over), and prints
Markdown tables.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import genlab
from genlab.data import load_dataset
from genlab.data.captions import ATTRIBUTES
from genlab.images import save_grid
from genlab.latent.style import mixing_grid, require_style_based, sample_w
from genlab.metrics import fid
from genlab.metrics.captions import attribute_probabilities, classifier_features, predicted_attributes
from genlab.metrics.mixing import inheritance, resolution_shares
from genlab.metrics.precision_recall import precision_recall
from genlab.models.protocols import as_module, eval_mode
from genlab.plotting import draw_lines
from genlab.runs.checkpoint import kimg_of
from genlab.runs.folder import read_run
from genlab.runs.locations import resolve, zoo_name

SURE = 0.9  # a shape read with at least this probability counts as read with confidence
BATCH = 500
CHANGE = "image change (fraction of B's distance)"


@dataclass
class Judge:
    """What a mix is read by: attribute ``names``, ``read`` (images -> values [N, len(names)]) and ``sure``
    (images -> whether the first attribute is read with probability >= SURE)."""

    names: list[str]
    read: Callable[[torch.Tensor], torch.Tensor]
    sure: Callable[[torch.Tensor], torch.Tensor]


def sprite_judge(classifier) -> Judge:
    return Judge(list(ATTRIBUTES), lambda x: predicted_attributes(classifier, x),
                 lambda x: attribute_probabilities(classifier, x)[0].max(1).values >= SURE)


def digit_judge(classifier, real: torch.Tensor) -> Judge:
    def ink(x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float().mean(dim=(1, 2, 3))

    median = ink(real).median()

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return batched(classifier, x).softmax(1)

    def read(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([probabilities(x).argmax(1), (ink(x) > median).long()], dim=1)

    return Judge(["digit", "stroke (more ink than the median)"], read, lambda x: probabilities(x).max(1).values >= SURE)


def layer_resolution(G, layer: int) -> int:
    """The resolution at which w number ``layer`` acts (the last one feeds the final toRGB)."""
    return int(G.convs[min(layer, len(G.convs) - 1)].noise_const.shape[-1])


@torch.no_grad()
def batched(fn, *zs: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(*(z[i : i + BATCH] for z in zs)) for i in range(0, len(zs[0]), BATCH)])


@torch.no_grad()
def print_resolution_shares(G, run: str, checkpoints: list[str], z: torch.Tensor, out: Path) -> None:
    """The share of the images' spread each resolution draws, for each of ``run``'s ``checkpoints`` and ``G``."""
    kimgs = [kimg_of(Path(c)) for c in checkpoints]
    models = [genlab.load(run, checkpoint=c) for c in checkpoints] + [G]
    names = [f"{k:g} kimg" for k in kimgs] + ["the G read above"]
    table = []
    for model in models:
        model = require_style_based(model)
        table.append(resolution_shares(model.resolution_parts(model.broadcast(model.mapping(z[:BATCH])))))
    print("\n| G | " + " | ".join(f"{r} px" for r in table[0]) + " |\n|---|" + "---|" * len(table[0]))
    for name, shares in zip(names, table, strict=True):
        print(f"| {name} | " + " | ".join(f"{share:.3f}" for share in shares.values()) + " |")
    if checkpoints:
        curves = {f"{r} px": (kimgs, [shares[r] for shares in table[:-1]]) for r in table[0]}
        draw_lines({"share of the images' spread": curves}, "kimg", out / "style-resolution-shares.png",
                   ylims={"share of the images' spread": (0.0, 1.0)}, legend="right")


@torch.no_grad()
def print_overfitting(run: str, checkpoint: str | None, data, held_out: torch.Tensor) -> None:
    """D's logits on as many training images (of data config ``data``) as ``held_out`` test images: the gap
    ADA reads as overfitting."""
    if zoo_name(resolve(run)):
        print(f"\n{run} ships G only: give --run its training run to read D's overfitting")
        return
    D = genlab.load(run, checkpoint=checkpoint, role="D")
    n = len(held_out)
    print("\n| D on | mean logit | r_t = E[sign D(x)] |\n|---|---|---|")
    for images, name in ((load_dataset(data, "train").batch(slice(0, n))["image"], "training images"),
                         (held_out, "held-out images")):
        logits = batched(D, images)
        print(f"| {n} {name} | {float(logits.mean()):.3f} | {float(logits.sign().mean()):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="zoo:stylegan-sprites", help="a StyleGAN run on colour sprites")
    parser.add_argument("--checkpoint", help="a checkpoint of --run to read instead of its newest")
    parser.add_argument("--classifier", default="zoo:sprites-attributes",
                        help="an attribute classifier run trained on the run's data (captioned)")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--n", type=int, default=2000, help="samples per truncation, and real test sprites")
    parser.add_argument("--psi", type=float, nargs="+", default=[1.0, 0.8, 0.6, 0.4, 0.2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shares-over", nargs="*", default=[], metavar="CKPT",
                        help="checkpoints of --run (e.g. RUN/checkpoints/ckpt-*) whose resolution shares to print")
    parser.add_argument("--out", default="runs/bench-style-mixing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    G = require_style_based(genlab.load(args.run, checkpoint=args.checkpoint))
    classifier = genlab.load(args.classifier)
    size = tuple(classifier.image_shape[1:])

    def fit(x: torch.Tensor) -> torch.Tensor:
        """Images at the judge's size (a 32-px G read by the 28-px digit classifier)."""
        return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", antialias=True)

    data = read_run(args.run)[1].data
    test_images = load_dataset(data, "test").batch(slice(0, args.n))["image"]
    real = fit(test_images)
    sprites = tuple(classifier.targets) == tuple(ATTRIBUTES)
    judge = sprite_judge(classifier) if sprites else digit_judge(classifier, real)
    generator = torch.Generator().manual_seed(args.seed)
    z_a, z_b, z_c = (torch.randn(args.pairs, G.latent_dim, generator=generator) for _ in range(3))

    def draw(z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        """Images of latents ``z`` truncated in W by ``psi``, at the judge's size."""
        return batched(lambda x: fit(sample_w(G, x, psi)), z)

    with eval_mode(as_module(G)):
        images_a, images_b, images_c = (draw(z) for z in (z_a, z_b, z_c))
        parents = [judge.read(images_a), judge.read(images_b)]
        third = judge.read(images_c)
        print(f"{args.run}: {G.num_ws} style inputs; {args.pairs} pairs; cells: % of mixes read with A's value / "
              "with B's, among pairs whose parents differ in that attribute\n")
        print("| crossover: A's layers / B's | " + " | ".join(judge.names) + " | image change |\n|---|"
              + "---|" * (len(judge.names) + 1))
        distance = float((images_b - images_a).abs().mean())
        curves: dict[str, tuple[list[float], list[float]]] = {}
        for crossover in range(1, G.num_ws):
            mixes = batched(lambda a, b, c=crossover: fit(G.mix(a, b, c)), z_a, z_b)
            mixed = judge.read(mixes)
            change = float((mixes - images_a).abs().mean()) / distance
            cells = inheritance(*parents, mixed, judge.names)
            coarse = f"{layer_resolution(G, 0)}-{layer_resolution(G, crossover - 1)} px"
            fine = f"{layer_resolution(G, crossover)}-{layer_resolution(G, G.num_ws - 1)} px"
            print(f"| {crossover}: {coarse} / {fine} | "
                  + " | ".join(f"{100 * a:.0f} / {100 * b:.0f}" for a, b, _ in cells.values()) + f" | {change:.3f} |")
            for name, value in [(name, from_a) for name, (from_a, _, _) in cells.items()] + [(CHANGE, change)]:
                curves.setdefault(name, ([], []))[0].append(crossover)
                curves[name][1].append(value)
        control = inheritance(*parents, third, judge.names)
        print("| control: an independent sample in the mix's place | "
              + " | ".join(f"{100 * a:.0f} / {100 * b:.0f}" for a, b, _ in control.values())
              + f" | {float((images_c - images_a).abs().mean()) / distance:.3f} |")
        print("| pairs whose parents differ | " + " | ".join(str(n) for _, _, n in control.values()) + " | |")
        draw_lines({"mixes read with A's value; image change (fraction)": curves},
                   "crossover: first layer taking B's style",
                   out / "style-mixing-inheritance.png",
                   ylims={"mixes read with A's value; image change (fraction)": (0.0, 1.0)},
                   legend="bottom-right")

        crossover = next(c for c in range(1, G.num_ws) if layer_resolution(G, c) >= 16)
        grid = mixing_grid(G, z_a[:6], z_b[:6], crossover)
        save_grid(grid.images, out / "style-mixing.png", nrow=grid.nrow)

        sure = [float(judge.sure(x).float().mean()) for x in (images_a, real)]
        print(f"\n{judge.names[0]} read with probability >= {SURE}: samples {sure[0]:.3f}, "
              f"real test images {sure[1]:.3f}")

        real_features = classifier_features(classifier, real)
        z = torch.randn(args.n, G.latent_dim, generator=generator)
        print("\n| psi | FID | precision | recall |\n|---|---|---|---|")
        scores: dict[str, tuple[list[float], list[float]]] = {"precision": ([], []), "recall": ([], [])}
        for psi in args.psi:
            features = classifier_features(classifier, draw(z, psi))
            pr = precision_recall(features, real_features)
            print(f"| {psi:g} | {fid.fid(features, real_features)['fid']:.1f} | {pr['precision']:.3f} | "
                  f"{pr['recall']:.3f} |")
            for key in scores:
                scores[key][0].append(psi)
                scores[key][1].append(pr[key])
        draw_lines({"precision and recall (fraction)": scores}, "psi (truncation in W; 1: none)",
                   out / "style-truncation.png", ylims={"precision and recall (fraction)": (0.0, 1.0)}, legend="right")
    print_resolution_shares(G, args.run, args.shares_over, z_a, out)
    print_overfitting(args.run, args.checkpoint, data, test_images)
    print(f"\nfigures: {out / 'style-mixing.png'}, {out / 'style-mixing-inheritance.png'}, "
          f"{out / 'style-truncation.png'}")


if __name__ == "__main__":
    main()
