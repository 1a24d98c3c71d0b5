"""`genlab` command line: one sub-command per module, each a thin layer over the API."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from genlab.errors import GenlabError

# Each module defines ``add_parser(subparsers)``, which sets ``func`` on its parser.
COMMANDS = (
    "genlab.cli.train",
    "genlab.cli.sample",
    "genlab.cli.latent",
    "genlab.cli.translate",
    "genlab.cli.evaluate",
    "genlab.cli.info",
    "genlab.cli.classifier",
    "genlab.cli.theory",
    "genlab.cli.studio",
    "genlab.cli.zoo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genlab", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["genlab", *argv])  # as typed: what a card or record says made it
    try:
        return int(args.func(args) or 0)
    except GenlabError as err:
        print(f"genlab: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user named, a full or read-only disk: the message names the file
        print(f"genlab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
