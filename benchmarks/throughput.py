"""Training throughput on this machine, as a fraction of its own matmul peak, and each speed switch measured.

    python benchmarks/throughput.py --data-root ../shared/data [--threads 1 2] [--steps 200] [--skip-plain]

For each thread count:
1. the matmul peak: GFLOP/s of a 1024^3 product in fp32 (the faster of the BLAS and oneDNN) and
   bf16 (what the CPU can do at best);
2. the 784-400-20 VAE and DCGAN-28 (configs/vae_mnist.yaml, configs/dcgan_mnist.yaml): one
   training step as genlab's loop runs it (the step's phases, fused Adam), in fp32 (the VAE with
   its Linear layers on the BLAS and on oneDNN, train.cpu_linear) and bf16 autocast; FLOPs per
   step counted by torch.utils.flop_counter, so GFLOP/s and the fraction of
   the peak follow; the VAE's seconds per 60,000-image epoch, and the epoch's floor: its FLOPs
   at the matmul peak; "auto" is the precision train.precision=auto's rule picks from these times;
3. switches on DCGAN-28, each alone: train.memory_format=channels_last (conv weights and
   batches in NHWC) in fp32 and in bf16, Adam's for-loop and foreach implementations against the
   fused one;
4. a plain loop (unless --skip-plain): what a newcomer writes from the common examples,
   torchvision's ToTensor + Normalize per sample through a DataLoader, plain Adam, the same DCGAN,
   timed in the same run: genlab's images/s over it, in fp32, in the precision auto picks, and in
   that precision with channels_last. Its G's first layer is the common example's
   nn.ConvTranspose2d, not genlab's LatentProjection (the same weights and results).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.config import load_config
from genlab.data import load_dataset
from genlab.training.batches import MEMORY_FORMATS, in_layout
from genlab.training import cpu_linear
from genlab.training.loop import _training_only, build_step
from genlab.training.precision import choose
from matmul_cpu import gflops as matmul_gflops  # benchmarks/matmul_cpu.py: the same timing of the peak

ROOT = Path(__file__).resolve().parents[1]
BATCH = {"vae": 128, "dcgan": 64}
CONFIGS = {"vae": "vae_mnist.yaml", "dcgan": "dcgan_mnist.yaml"}


class Trainer:
    """One genlab training step of a config's model, as the loop runs it (without logging or checkpoints)."""

    def __init__(self, name: str, data_root: str, overrides: list[str] = ()) -> None:
        config = load_config(ROOT / "configs" / CONFIGS[name], [f"data.root={data_root}", "data.download=false",
                                                                  f"train.batch_size={BATCH[name]}", *overrides])
        self.config = config
        self.data = load_dataset(config.data, "train")
        torch.manual_seed(0)
        self.step = build_step(config, self.data.spec, torch.device("cpu"), self.data)
        self.linear_backend, _ = cpu_linear.setup(config.train.cpu_linear, torch.device("cpu"), self.step.modules.values())
        self.phases = self.step.phases()
        self.order = torch.randperm(len(self.data))
        self.position = 0

    def batch(self):
        n = self.config.train.batch_size
        if self.position + n > len(self.order):
            self.position = 0
        index = self.order[self.position : self.position + n]
        self.position += n
        return in_layout(self.data.batch(index, "cpu"), MEMORY_FORMATS[self.config.train.memory_format])

    def run(self, precision: str = "fp32") -> None:
        batch = None
        for phase in self.phases:
            optimizer = self.step.optimizers[phase.optimizer]
            with _training_only(self.step, phase, wrapped={}):
                for _ in range(phase.repeats):
                    if not phase.reuse_batch or batch is None:
                        batch = self.batch()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                        out = phase.loss(batch)
                    optimizer.zero_grad(set_to_none=True)
                    out.loss.backward()
                    optimizer.step()
                    if phase.after_step is not None:
                        phase.after_step()


def time_steps(trainer: Trainer, steps: int, **kwargs) -> float:
    """Median seconds per step over ``steps`` steps in five blocks, after warm-up steps."""
    for _ in range(10):
        trainer.run(**kwargs)
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(max(1, steps // 5)):
            trainer.run(**kwargs)
        blocks.append((time.perf_counter() - start) / max(1, steps // 5))
    return statistics.median(blocks)


def flops_per_step(trainer: Trainer) -> float:
    with FlopCounterMode(display=False) as counter:
        trainer.run()
    return counter.get_total_flops()


def plain_dcgan_images_per_sec(data_root: str, steps: int) -> float:
    """The common example's loop: PIL images through ToTensor + Normalize per sample, a DataLoader,
    plain Adam, BCE; the same DCGAN-28 networks and batch as genlab's."""
    from PIL import Image
    from torchvision import transforms

    from genlab.models.dcgan import DCGANDiscriminator, DCGANGenerator

    config = load_config(ROOT / "configs" / CONFIGS["dcgan"], [f"data.root={data_root}", "data.download=false"])
    pixels = load_dataset(config.data, "train")["image"][:, 0].numpy()  # the official files, as torchvision's MNIST
    convert = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])

    class PerSample(torch.utils.data.Dataset):  # torchvision's MNIST: a PIL image per item, converted per item
        def __len__(self) -> int:
            return len(pixels)

        def __getitem__(self, i: int):
            return convert(Image.fromarray(pixels[i], mode="L")), 0

    dataset = PerSample()
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH["dcgan"], shuffle=True, drop_last=True)
    torch.manual_seed(0)
    G, D = DCGANGenerator((1, 28, 28), 100, 64), DCGANDiscriminator((1, 28, 28), 64, sn=False, batch_norm=True)
    G.net[0].__class__ = torch.nn.ConvTranspose2d  # the common example's first layer: same weights, its own kernel
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), foreach=False)
    bce = torch.nn.BCEWithLogitsLoss()
    images, start, done = 0, None, 0
    for real, _ in loader:
        if done == 10:
            start, images = time.perf_counter(), 0
        n = real.shape[0]
        fake = G(torch.randn(n, 100))
        opt_d.zero_grad()
        (bce(D(real), torch.ones(n)) + bce(D(fake.detach()), torch.zeros(n))).backward()
        opt_d.step()
        opt_g.zero_grad()
        bce(D(fake), torch.ones(n)).backward()
        opt_g.step()
        images += n
        done += 1
        if done == 10 + steps:
            break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--skip-plain", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        blas, onednn = matmul_gflops(1024, 1024, 1024, torch.float32), matmul_gflops(1024, 1024, 1024, torch.float32, onednn=True)
        peak = {"fp32": max(blas, onednn), "bf16": matmul_gflops(1024, 1024, 1024, torch.bfloat16)}
        print(f"\n== {threads} thread(s): matmul peak fp32 {peak['fp32']:.0f} GFLOP/s (BLAS {blas:.0f}, oneDNN {onednn:.0f}), "
              f"bf16 {peak['bf16']:.0f} GFLOP/s")
        print("| model | precision | ms/step | images/s | GFLOP/s | of peak | s/epoch | s/epoch at peak |")
        print("|---|---|---|---|---|---|---|---|")
        step_seconds = {}
        variants = {"vae": [("fp32", "blas"), ("fp32", "onednn"), ("bf16", "blas")], "dcgan": [("fp32", "blas"), ("bf16", "blas")]}
        for name in ("vae", "dcgan"):
            # Counted on the BLAS variant: FlopCounterMode knows aten's products, not oneDNN's linear; the FLOPs are the same.
            flops = flops_per_step(Trainer(name, args.data_root, ["train.cpu_linear=blas"]))
            for precision, linear in variants[name]:
                trainer = Trainer(name, args.data_root, [f"train.cpu_linear={linear}"])
                seconds = step_seconds[name, precision, linear] = time_steps(trainer, args.steps, precision=precision)
                images = BATCH[name] / seconds
                gflops = flops / seconds / 1e9
                steps_per_epoch = 60_000 / BATCH[name]
                shown = f"{precision}, Linear on {linear}" if name == "vae" and precision == "fp32" else precision
                print(f"| {name} | {shown} | {seconds * 1e3:.2f} | {images:.0f} | {gflops:.0f} | "
                      f"{gflops / peak[precision]:.0%} | {seconds * steps_per_epoch:.2f} | "
                      f"{flops * steps_per_epoch / (peak[precision] * 1e9):.2f} |")
            linear = Trainer(name, args.data_root).linear_backend  # what train.cpu_linear=auto picks here
            fp32 = step_seconds[name, "fp32", linear]
            picked = choose({"fp32": fp32, "bf16": step_seconds[name, "bf16", "blas"]})
            seconds = fp32 if picked == "fp32" else step_seconds[name, "bf16", "blas"]
            shown = f"{picked}, Linear on {linear}" if name == "vae" and picked == "fp32" else picked
            print(f"| {name} | auto picks {shown} | {seconds * 1e3:.2f} | {BATCH[name] / seconds:.0f} | | | | |")
        trainer = Trainer("dcgan", args.data_root)
        base = time_steps(trainer, args.steps)
        nhwc = Trainer("dcgan", args.data_root, ["train.memory_format=channels_last"])
        cl = {p: time_steps(nhwc, args.steps, precision=p) for p in ("fp32", "bf16")}
        print(f"dcgan switches, ms/step: fused Adam (genlab) {base * 1e3:.2f}; channels_last {cl['fp32'] * 1e3:.2f}, "
              f"in bf16 {cl['bf16'] * 1e3:.2f} (contiguous bf16 {step_seconds['dcgan', 'bf16', 'blas'] * 1e3:.2f})", end="")
        for impl in ("foreach", "for-loop"):
            t = Trainer("dcgan", args.data_root)
            for name, opt in t.step.optimizers.items():
                group = opt.param_groups[0]
                t.step.optimizers[name] = torch.optim.Adam(
                    [p for g in opt.param_groups for p in g["params"]], group["lr"], betas=group["betas"],
                    foreach=impl == "foreach")
            print(f"; Adam {impl} {time_steps(t, args.steps) * 1e3:.2f}", end="")
        print()
        if not args.skip_plain:
            plain = plain_dcgan_images_per_sec(args.data_root, args.steps)
            ours = BATCH["dcgan"] / base
            picked = choose({p: step_seconds["dcgan", p, "blas"] for p in ("fp32", "bf16")})
            auto = BATCH["dcgan"] / step_seconds["dcgan", picked, "blas"]
            auto_cl = BATCH["dcgan"] / cl[picked]
            print(f"dcgan-28 images/s: plain loop {plain:.0f}; genlab fp32 {ours:.0f} ({ours / plain:.2f}x), "
                  f"genlab auto ({picked}) {auto:.0f} ({auto / plain:.2f}x), "
                  f"auto + channels_last {auto_cl:.0f} ({auto_cl / plain:.2f}x)")


if __name__ == "__main__":
    main()
