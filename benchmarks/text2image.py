"""Text to image on captioned sprites: does the model draw what the caption says?

    python benchmarks/text2image.py [--kimg 100] [--n 5000] [--threads 1] [--run RUN] [--classifier RUN]
                                    [--pretrain-kimg K | --text-encoder RUN] [--set K=V]
                                    [--config configs/flow_text_sprites.yaml] [--guidance 1 2 3 5] [--shares-only]

1. Trains the attribute classifier (configs/attribute_classifier.yaml: one head per caption
   attribute) unless --classifier names a run (zoo:sprites-attributes-plain is that recipe's run,
   shipped), and prints its accuracy on real test sprites: the ceiling of the judge.
2. With --pretrain-kimg K, trains the joint text-image embedding (configs/text_embedding_sprites.yaml)
   for K kimg, or takes the text_embedding run --text-encoder names, and prints its text->image
   top-1 retrieval accuracy within batches of 64 real test sprites; the GAN then reads its text
   encoder, frozen (model.text_encoder).
3. Trains --config (default configs/text2image_sprites.yaml, the GAN) for --kimg unless --run
   names a run.
4. Samples --n images of random captions and prints the classifier's per-attribute accuracy
   against the captions, beside chance (1 / the attribute's number of values) and the same
   images scored against shuffled captions (what ignoring the text would score).
5. FID between the samples and the real test sprites in the classifier's feature space
   (penultimate layer), beside the FID of one half of the real test set against the other.
6. A diffusion or flow model is scored at each classifier-free guidance scale of --guidance
   (its config's own without it): one row per scale, accuracies and FID.
7. Writes OUT/captions[-gSCALE].png: caption | 8 samples, for captions that differ only in shape and
   rotation (the attributes the GAN does not follow), at each scale.
8. What of a caption reaches the generator: the share of its sentence embedding's variance that each
   attribute explains (``metrics.captions.attribute_shares``, 8,000 random captions), for the trained
   model, for the same model re-initialised (the architecture's own bias) and for a pre-trained text
   encoder (step 2: what a GAN reading it gets). An attribute with a share near 0 barely moves what
   the generator reads.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch

import genlab
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.data.base import TensorDataset
from genlab.data.captions import ATTRIBUTES, caption, random_attributes
from genlab.images import make_grid
from genlab.losses.contrastive import identical_rows
from genlab.metrics import fid
from genlab.metrics.captions import (attribute_accuracy, caption_accuracy, caption_embedding_shares,
                                     classifier_features, predicted_attributes)
from genlab.models.protocols import IterativeSampler, eval_mode
from genlab.plotting import draw_labelled_rows

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["train.progress_bar=false", "train.tensorboard=false"]
SHARE_CAPTIONS = 8000  # random captions behind each attribute-share row (step 8)
RETRIEVAL_BATCH = 64  # the training batch: the logged top-1 and this one have the same chance level


@torch.no_grad()
def caption_figure(model: torch.nn.Module, path: Path, per_caption: int = 8) -> Path:
    """caption | samples for a big red sprite in the upper left, each shape upright and rotated."""
    attributes = torch.tensor([[shape, 1, 0, 0, 0, rotation] for shape in range(3) for rotation in range(2)])
    texts = [caption(a, 0) for a in attributes]
    tokens = model.tokens([text for text in texts for _ in range(per_caption)])
    with eval_mode(model):
        images = model.sample(len(tokens), generator=torch.Generator().manual_seed(3), labels=tokens)
    rows = [make_grid(chunk, nrow=per_caption).permute(1, 2, 0).numpy() for chunk in images.split(per_caption)]
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_labelled_rows(texts, rows).save(path)
    return path


@torch.no_grad()
def retrieval_accuracy(embedding: torch.nn.Module, data: TensorDataset) -> float:
    """Text->image top-1 within consecutive batches of RETRIEVAL_BATCH examples: a caption's nearest image
    is right when its caption is the same."""
    right = 0
    for start in range(0, len(data) - RETRIEVAL_BATCH + 1, RETRIEVAL_BATCH):
        batch = data.batch(slice(start, start + RETRIEVAL_BATCH))
        text, images, _ = embedding(batch["caption"], batch["image"])
        nearest = (text @ images.T).argmax(dim=1)
        right += int(identical_rows(batch["caption"])[torch.arange(RETRIEVAL_BATCH), nearest].sum())
    return right / (len(data) // RETRIEVAL_BATCH * RETRIEVAL_BATCH)


def reinitialised(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh, as before training."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng():  # seeded, and leaves the sampling that follows as it was
        torch.manual_seed(0)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return fresh


def print_shares(rows: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> None:
    """A table: per attribute, the share of each caption embedding (word indices -> embeddings) it explains."""
    shares = {name: caption_embedding_shares(embed, n=SHARE_CAPTIONS) for name, embed in rows.items()}
    print(f"\nshare of the caption embedding's variance explained by each attribute ({SHARE_CAPTIONS:,} random "
          "captions; rotation is missing from one template in four):")
    print("| embedding | " + " | ".join(ATTRIBUTES) + " |\n" + "|---" * (len(ATTRIBUTES) + 1) + "|")
    for name, values in shares.items():
        print(f"| {name} | " + " | ".join(f"{values[k]:.3f}" for k in ATTRIBUTES) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kimg", type=float, default=100.0)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run", help="a trained text-to-image run (of --config)")
    parser.add_argument("--config", default="configs/text2image_sprites.yaml", help="the text-to-image config")
    parser.add_argument("--guidance", type=float, nargs="+", help="diffusion/flow models: guidance scales to score")
    parser.add_argument("--classifier", help="a trained attribute classifier run")
    encoder = parser.add_mutually_exclusive_group()
    encoder.add_argument("--pretrain-kimg", type=float, default=0.0,
                         help="first train the text embedding this long; the GAN reads its text encoder, frozen")
    encoder.add_argument("--text-encoder", help="a trained text_embedding run whose text encoder the GAN reads, frozen")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of --config (repeatable)")
    parser.add_argument("--out", default="runs/bench-t2i", help="where the runs and the figures go")
    parser.add_argument("--shares-only", action="store_true",
                        help="stop after the caption embeddings' attribute shares (step 8): no sampling")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    threads = [f"train.threads={args.threads}", f"train.out_dir={out}"]

    start = time.perf_counter()
    judge_run = args.classifier or genlab.train(str(ROOT / "configs" / "attribute_classifier.yaml"), QUIET + threads)
    judge = genlab.load(judge_run)
    judge_config = load_config(ROOT / "configs" / "attribute_classifier.yaml")
    test = load_dataset(judge_config.data, "test")
    real = test.batch(slice(None))
    truth = torch.stack([real[name] for name in ATTRIBUTES], dim=1)
    real_acc = attribute_accuracy(predicted_attributes(judge, real["image"]), truth)
    print(f"attribute classifier ({time.perf_counter() - start:.0f} s), accuracy on {len(test)} real test sprites: "
          + ", ".join(f"{k} {v:.3f}" for k, v in real_acc.items()))

    text_encoder, gan_overrides = args.text_encoder, args.overrides
    if args.pretrain_kimg > 0:
        start = time.perf_counter()
        text_encoder = genlab.train(str(ROOT / "configs" / "text_embedding_sprites.yaml"),
                                    QUIET + threads + [f"train.kimg={args.pretrain_kimg}"])
        print(f"text embedding {text_encoder} ({args.pretrain_kimg:g} kimg, {time.perf_counter() - start:.0f} s)")
    if text_encoder:
        top1 = retrieval_accuracy(genlab.load(text_encoder), test)  # loaded in eval mode
        print(f"text->image top-1 within batches of {RETRIEVAL_BATCH} real test sprites: {top1:.3f} "
              f"(chance {1 / RETRIEVAL_BATCH:.3f})")
        print_shares({"its text encoder (what the GAN reads, frozen)": genlab.load(text_encoder).text})
        gan_overrides = [f"model.text_encoder={text_encoder}", *gan_overrides]

    start = time.perf_counter()
    overrides = QUIET + threads + [f"train.kimg={args.kimg}", *gan_overrides]
    run = args.run or genlab.train(str(ROOT / args.config), overrides)
    trained = "a given run" if args.run else f"{args.kimg:g} kimg, {time.perf_counter() - start:.0f} s of training"
    model = genlab.load(run)
    print_shares({f"{run}, trained": model.embed_text,
                  "the same model re-initialised": reinitialised(model).embed_text})
    if args.shares_only:
        return
    real_features = classifier_features(judge, real["image"])
    half = len(real_features) // 2
    chance = {name: 1 / (3 if name == "shape" else len(words)) for name, words in ATTRIBUTES.items()}
    other = random_attributes(args.n, torch.Generator().manual_seed(2))
    scales = args.guidance if isinstance(model, IterativeSampler) and args.guidance else [None]
    rows = []
    for scale in scales:
        start = time.perf_counter()
        with model.sampling(guidance=scale) if scale is not None else contextlib.nullcontext():
            accuracy, images = caption_accuracy(model, judge, args.n, seed=1)
        sample_s = time.perf_counter() - start
        ignoring = attribute_accuracy(predicted_attributes(judge, images), other)
        score = fid.fid(classifier_features(judge, images), real_features)["fid"]
        shown = "" if scale is None else f" at guidance {scale:g}"
        print(f"\n{run} ({trained}), {args.n} samples of random captions{shown} "
              f"({sample_s:.0f} s to sample):")
        print("| attribute | accuracy | shuffled captions | chance |")
        print("|---|---|---|---|")
        for name in (*ATTRIBUTES, "all"):
            print(f"| {name} | {accuracy[name]:.3f} | {ignoring[name]:.3f} | {chance.get(name, float('nan')):.3f} |")
        print(f"FID in the attribute classifier's features: samples vs {len(test)} real test sprites {score:.2f}")
        with model.sampling(guidance=scale) if scale is not None else contextlib.nullcontext():
            figure = caption_figure(model, out / ("captions.png" if scale is None else f"captions-g{scale:g}.png"))
        print(f"caption | samples: {figure}")
        rows.append((scale, accuracy, score))
    print(f"\nreal half vs half: FID {fid.fid(real_features[:half], real_features[half:])['fid']:.2f}")
    if len(rows) > 1:
        print("\n| guidance | " + " | ".join((*ATTRIBUTES, "all")) + " | FID |")
        print("|---" * (len(ATTRIBUTES) + 3) + "|")
        for scale, accuracy, score in rows:
            cells = " | ".join(f"{accuracy[k]:.3f}" for k in (*ATTRIBUTES, "all"))
            print(f"| {scale:g} | {cells} | {score:.1f} |")


if __name__ == "__main__":
    main()
