"""Training speed of the diffusion U-Net (genlab.models.unet) at several widths, precisions and layouts.

Times one optimiser step (forward, the flow-matching MSE, backward, fused Adam) on batches of 64
MNIST-sized images after 3 warm-up steps, and prints images per second per setting:

    PYTHONPATH=src python benchmarks/unet_speed.py [--channels 16 24 32] [--threads 1] [--steps 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from genlab.data.base import Classes, Image
from genlab.models.diffusion import FlowMatchingConfig, build_flow_matching

SPEC = {"image": Image(1, 28, 28), "label": Classes(tuple("0123456789"))}


def images_per_second(channels: int, precision: str, layout: str, steps: int, batch: int = 64) -> float:
    cfg = FlowMatchingConfig(channels=channels, channel_mult=(1, 2, 2), blocks_per_level=1,
                             attention_resolutions=(7,), dropout=0.0)
    model = build_flow_matching(cfg, SPEC)["model"]()
    x = torch.randn(batch, 1, 28, 28)
    if layout == "channels_last":
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x, torch.rand(batch))
        (out.float() - x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 24, 32])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| widths | {args.threads} thread(s) | bf16, NCHW | fp32, NCHW | bf16, channels_last |\n|---|---|---|---|---|")
    for c in args.channels:
        speeds = [images_per_second(c, p, lay, args.steps) for p, lay in
                  (("bf16", "contiguous"), ("fp32", "contiguous"), ("bf16", "channels_last"))]
        print(f"| {c}-{2 * c} | | " + " | ".join(f"{s:.0f} images/s" for s in speeds) + " |", flush=True)


if __name__ == "__main__":
    main()
