"""Does SPADE's output follow its label map and its style image (Park et al. 2019), measured on colour sprites.

Each test sprite A gives the label map, another test sprite B (a fixed random pairing) the style image;
an attribute classifier trained on real sprites (``configs/attribute_classifier.yaml``) reads the output:

- **layout**: shape, size, position and rotation of the output against A's, which only the label map
  carries; the control is the same output against a random third sprite's (chance level);
- **style**: the shape's colour against B's, which only the style image carries, with A's as the control;
  and the background's mean colour (over A's background pixels) against B's background and A's, in 0-255
  units per channel;
- the same with a style code drawn from N(0, I) instead of a style image (the layout must hold);
- the classifier on the real test sprites: the ceiling of every accuracy.

One PNG: label maps across the top, style images down the side, each cell the synthesis.

    PYTHONPATH=src python benchmarks/spade.py --run RUN --classifier ATTRIBUTE_RUN [--n 2000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import genlab
from genlab.data import load_dataset
from genlab.data.captions import ATTRIBUTES, attributes_of
from genlab.data.pairs import palette_image
from genlab.images import save_grid, to_model
from genlab.metrics.captions import attribute_accuracy, predicted_attributes
from genlab.runs.folder import read_run

LAYOUT = ("shape", "size", "vertical", "horizontal", "rotation")
COLUMNS, ROWS = 8, 5  # of the figure


def background_colour(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean RGB (0-255) over each image's background pixels (label 0): [N, 3]."""
    mask = (labels == 0).unsqueeze(1).float()
    return ((images + 1) * 127.5 * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained spade run")
    p.add_argument("--classifier", required=True, help="the attribute classifier run")
    p.add_argument("--n", type=int, default=2000, help="test sprites")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/bench-spade-eval")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, config, _ = read_run(Path(args.run))
    G, judge = genlab.load(args.run), genlab.load(args.classifier)
    test = load_dataset(config.data, "test")
    n = min(args.n, len(test))
    batch = test.batch(slice(0, n))
    images, labels = batch["image"], batch["segmentation"]
    truth = attributes_of(batch["factors"], test.spec["factors"].names)  # type: ignore[union-attr]
    generator = torch.Generator().manual_seed(0)
    style_of, third = torch.randperm(n, generator=generator), torch.randperm(n, generator=generator)

    def synthesise(style: torch.Tensor | None) -> torch.Tensor:
        chunks = [G.synthesise(labels[i : i + 250], None if style is None else style[i : i + 250],
                               generator=torch.Generator().manual_seed(i)) for i in range(0, n, 250)]
        return torch.cat(chunks)

    styled, unstyled = synthesise(images[style_of]), synthesise(None)
    real = attribute_accuracy(predicted_attributes(judge, images), truth)
    read = predicted_attributes(judge, styled)
    layout = attribute_accuracy(read, truth)
    layout_control = attribute_accuracy(read, truth[third])
    colour = list(ATTRIBUTES).index("colour")
    result = {
        "run": args.run,
        "n": n,
        "real": {k: real[k] for k in (*LAYOUT, "colour")},
        "layout": {k: layout[k] for k in LAYOUT},
        "layout_control_random_sprite": {k: layout_control[k] for k in LAYOUT},
        "layout_without_style_image": {
            k: v for k, v in attribute_accuracy(predicted_attributes(judge, unstyled), truth).items() if k in LAYOUT
        },
        "colour_of_style_image": float((read[:, colour] == truth[style_of, colour]).float().mean()),
        "colour_of_label_map_sprite": float((read[:, colour] == truth[:, colour]).float().mean()),
        "background_distance_to_style": float(
            (background_colour(styled, labels) - background_colour(images[style_of], labels[style_of])).abs().mean()
        ),
        "background_distance_to_label_map_sprite": float(
            (background_colour(styled, labels) - background_colour(images, labels)).abs().mean()
        ),
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    print("\n| measure | against what it should follow | control |")
    print("|---|---|---|")
    for k in LAYOUT:
        print(f"| layout: {k} | {layout[k]:.3f} (label map's sprite; real sprites {real[k]:.3f}) | "
              f"{layout_control[k]:.3f} (a random sprite) |")
    print(f"| style: shape colour | {result['colour_of_style_image']:.3f} (style image; real {real['colour']:.3f}) | "
          f"{result['colour_of_label_map_sprite']:.3f} (the label map's sprite) |")
    print(f"| style: background, mean abs RGB distance | {result['background_distance_to_style']:.1f} (style image) | "
          f"{result['background_distance_to_label_map_sprite']:.1f} (the label map's sprite) |")

    # the figure: label maps across the top, style images down the side
    maps, styles = labels[:COLUMNS], images[COLUMNS : COLUMNS + ROWS]
    cells = [torch.ones_like(images[:1]), to_model(palette_image(maps))]
    for style in styles:
        cells += [style[None], G.synthesise(maps, style[None].expand(COLUMNS, -1, -1, -1))]
    save_grid(torch.cat(cells), out / "spade-grid.png", nrow=COLUMNS + 1)
    print(f"results and figure in {out}")


if __name__ == "__main__":
    main()
