"""genlab zoo list | pack: the trained models shipped with genlab.

``genlab zoo list`` shows each entry (family, data, size, its eval card's headline figures and
how it was trained). Any command that takes a run folder takes ``zoo:NAME``:

    genlab sample zoo:mnist-gan -o samples.png
    genlab eval zoo:mnist-gan --metrics fid,pr --n 10000
    genlab studio --zoo

For maintainers: ``genlab zoo pack RUN NAME ...`` writes a run's exported model into the zoo in
fp16, with its config and curves; ``genlab eval zoo:NAME ...`` then computes its card on the shipped
weights (in the cache: entries are read-only), and ``genlab zoo card NAME`` copies those cards into
the entry.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from genlab.errors import RunError
from genlab.runs.folder import read_run
from genlab.runs.locations import ZOO_PREFIX, output_dir, resolve
from genlab.runs.zoo import entries, pack


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "zoo",
        help="the trained models shipped with genlab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("list", help="every entry: family, data, size, headline figures, how it was trained")
    q.add_argument("--json", action="store_true", help="one JSON object per entry instead of a table")
    q.set_defaults(func=list_entries)
    q = actions.add_parser("pack", help="write a run's exported model into the zoo (maintainers)")
    q.add_argument("run", help="run folder")
    q.add_argument("name", help="the entry's name, e.g. mnist-gan")
    q.add_argument("--family", required=True, help="e.g. gan, vae, diffusion")
    q.add_argument("--command", required=True, help="the command that trained the run, as a user would type it")
    q.add_argument("--hardware", required=True, help="the CPU or GPU it trained on, and its threads")
    q.add_argument("--description", required=True, help="one line: what the model is and what it shows")
    q.add_argument("--longer", default="", help="what longer training would give, with the evidence")
    q.add_argument("--roles", nargs="*", default=[], help="modules to ship besides the export (CycleGAN: G_BA)")
    q.set_defaults(func=pack_entry)
    q = actions.add_parser("card", help="ship the eval cards computed for an entry (maintainers)")
    q.add_argument("name")
    q.set_defaults(func=ship_cards)


def list_entries(args: argparse.Namespace) -> int:
    rows = []
    for entry in entries():
        headline = ", ".join(f"{k} {v:.4g}" for k, v in entry.headline().items())
        rows.append(
            {
                "name": entry.name,
                "family": entry.info.get("family", ""),
                "data": entry.info.get("data", ""),
                "kimg": entry.info.get("kimg"),
                "mb": round(entry.size_bytes / 1e6, 2),
                "headline": headline,
                "trained": f"{entry.info.get('command', '')} ({entry.info.get('hardware', '')})",
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("the zoo is empty", file=sys.stderr)
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(
            f"{r['name']:<{width}}  {r['family']:<10} {r['data']:<14} {r['mb']:>5.2f} MB  {r['kimg']:>7g} kimg  "
            f"{r['headline']}"
        )
        print(f"{'':<{width}}  trained: {r['trained']}")
    print(f"{len(rows)} entries, {sum(r['mb'] for r in rows):.1f} MB; use one as zoo:NAME wherever a run folder goes")
    return 0


def pack_entry(args: argparse.Namespace) -> int:
    run_dir, config, _ = read_run(args.run)
    info = {
        "family": args.family,
        "data": config.data.name,
        "description": args.description,
        "command": args.command,
        "hardware": args.hardware,
        "longer": args.longer,
    }
    path = pack(run_dir, args.name, info, tuple(args.roles))
    print(f"genlab: zoo entry {args.name} written to {path}; ship its card with genlab eval zoo:{args.name} ...")
    return 0


def ship_cards(args: argparse.Namespace) -> int:
    entry = resolve(f"{ZOO_PREFIX}{args.name}")
    cards = sorted((output_dir(entry) / "eval").glob("*/card.json"))
    if not cards:
        raise RunError(f"no eval card computed for zoo:{args.name}; run genlab eval zoo:{args.name} first")
    for card in cards:
        target = entry / "eval" / card.parent.name / "card.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(card, target)
        print(f"genlab: {target}")
    return 0
