"""Studio latency: the slider round trip and concurrent clients, over loopback, on this CPU.

    python benchmarks/studio_latency.py --data-root ../shared/data [--run RUN] [--requests 500]
        [--clients 8] [--seconds 30] [--threads 1]

1. Without --run, trains the 784-400-20 MNIST VAE (configs/vae_mnist.yaml) for one epoch
   (60 kimg; the latency does not depend on how well it is trained) into a temp folder.
2. Starts ``genlab studio RUN`` in its own process, as a user would, and waits for it.
3. Slider round trip: ``--requests`` sequential POST /decode, each with one latent dimension
   moved as a slider does, timed from sending the request to holding the decoded PNG pixels.
   Prints the median and p95 (the target: median under 50 ms).
4. Concurrency: ``--clients`` threads, each with its own connection, decode in a loop for
   ``--seconds``; prints requests/s, errors and the p50/p95/max latency under that load.
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--run", help="a trained VAE run (default: train one epoch of configs/vae_mnist.yaml)")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train_vae(Path(tmp), args.data_root)
        with serve(run, args.threads) as url:
            with httpx.Client(base_url=url, timeout=30) as client:
                dim = client.get("/api/runs/0").json()["capabilities"]["latent_dim"]
                z = client.post("/api/runs/0/samples", json={"seed": 0, "n": 1}).json()["latents"][0]
                for _ in range(20):  # warm-up: first calls load the model and fill caches
                    round_trip(client, z)
                times = []
                for i in range(args.requests):
                    z[i % dim] = float(np.sin(i / 10.0) * 3)  # a slider being dragged
                    times.append(round_trip(client, z))
            ms = np.array(times) * 1000
            print(f"slider round trip ({args.requests} sequential requests, server threads={args.threads}): "
                  f"median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms")
            print(f"target median < 50 ms: {'met' if np.median(ms) < 50 else 'NOT met'}")
            load_test(url, z, args.clients, args.seconds)


def train_vae(out: Path, data_root: str) -> Path:
    import genlab

    print("training the MNIST VAE for one epoch (60 kimg) ...", flush=True)
    return genlab.train(str(ROOT / "configs" / "vae_mnist.yaml"),
                        [f"train.out_dir={out}", "train.kimg=60", "train.progress_bar=false",
                         "train.tensorboard=false", f"data.root={data_root}", "data.download=false"])


class serve:
    """``genlab studio RUN`` in a child process on a free loopback port; yields its URL."""

    def __init__(self, run: Path, threads: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.command = [sys.executable, "-m", "genlab", "studio", str(run), "--port", str(self.port),
                        "--threads", str(threads)]

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"the studio exited: {self.process.stderr.read()}")
            try:
                httpx.get(f"{url}/api/runs", timeout=5)
                return url
            except httpx.TransportError:
                time.sleep(0.2)
        sys.exit("the studio did not answer within 60 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def round_trip(client: httpx.Client, z: list[float]) -> float:
    """Seconds from sending one decode request to holding the PNG's pixels."""
    start = time.perf_counter()
    answer = client.post("/api/runs/0/decode", json={"z": z})
    answer.raise_for_status()
    data = base64.b64decode(answer.json()["image"].split(",", 1)[1])
    np.asarray(Image.open(io.BytesIO(data)))
    return time.perf_counter() - start


def load_test(url: str, z: list[float], clients: int, seconds: float) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(k: int) -> None:
        mine = list(z)
        with httpx.Client(base_url=url, timeout=30) as client:
            i = 0
            while time.monotonic() < stop:
                mine[i % len(mine)] = float((k + i) % 7 - 3)
                try:
                    t = round_trip(client, mine)
                except Exception as err:  # counted and shown: the point is whether any happen
                    with lock:
                        errors.append(repr(err))
                    continue
                with lock:
                    latencies.append(t)
                i += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    ms = np.array(latencies) * 1000
    print(f"{clients} concurrent clients for {elapsed:.0f} s: {len(ms)} requests ({len(ms) / elapsed:.0f}/s), "
          f"{len(errors)} errors, latency p50 {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
          f"max {ms.max():.1f} ms")
    if errors:
        print("first errors:", *errors[:3], sep="\n  ")
    print(f"(client threads share this machine's cores with the server; mean {statistics.mean(ms):.1f} ms)")


if __name__ == "__main__":
    main()
