"""Reproduce the zoo's eval cards: run each shipped card's own command again on this machine and print
the shipped figures beside the new ones.

    PYTHONPATH=src python benchmarks/zoo.py --data-root ../shared/data [--entries mnist-cgan mnist-vae]

Every scalar result of each card is compared; the same seed on another CPU differs only by floating
point (the samples' latents are seeded), so the figures should agree to a few parts in a thousand.
The new cards go to the cache (entries are read-only), as ``genlab eval zoo:NAME`` writes them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path

from genlab.cli.main import main
from genlab.runs.zoo import entries


def replay(card: dict, data_root: str, out: Path) -> dict:
    """The card's command again, with this machine's data root; its JSON record."""
    argv = shlex.split(card["command"])[1:]  # without "genlab"
    if "--data-root" in argv:
        i = argv.index("--data-root")
        argv[i + 1] = data_root
    if main([*argv, "-o", str(out)]) != 0:
        raise SystemExit(f"{card['command']} failed")
    return json.loads(out.read_text())


def reproduce(args: argparse.Namespace) -> None:
    rows = []
    for entry in entries():
        if args.entries and entry.name not in args.entries:
            continue
        for path in sorted(entry.path.glob("eval/*/card.json")):
            card = json.loads(path.read_text())
            if not card.get("command"):
                print(f"{entry.name}: {path.parent.name} records no command; skipped")
                continue
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                again = replay(card, args.data_root, Path(tmp) / "record.json")
            seconds = time.perf_counter() - start
            for key, shipped in card["results"].items():
                if isinstance(shipped, float) and isinstance(again.get(key), float):
                    rows.append((entry.name, key, shipped, again[key], seconds))
    print("| entry | figure | shipped | this machine | difference | eval s |\n|---|---|---|---|---|---|")
    for name, key, shipped, now, seconds in rows:
        print(f"| {name} | {key} | {shipped:.4f} | {now:.4f} | {now - shipped:+.4f} | {seconds:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="where MNIST is (the cards' commands read it)")
    parser.add_argument("--entries", nargs="*", help="only these entries (default: every entry with a card)")
    reproduce(parser.parse_args())
