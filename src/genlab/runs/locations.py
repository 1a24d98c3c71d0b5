"""Where runs are: genlab's cache, the model zoo shipped in the package, and ``zoo:NAME`` references.

A zoo entry is a run folder (config, data spec, training curves, eval cards) whose checkpoint holds
the exported model alone; every tool that takes a run folder takes ``zoo:NAME`` through
:func:`resolve`. Entries are read-only: what a tool writes for one (an eval card) goes to its
:func:`output_dir` in the cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from genlab.errors import RunError

CACHE_ENV = "GENLAB_CACHE"
ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"  # src/genlab/zoo: shipped with the package
ZOO_PREFIX = "zoo:"


def cache_dir() -> Path:
    """genlab's own cache: ``$GENLAB_CACHE`` or ``~/.cache/genlab``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "genlab").expanduser()


def zoo_names(zoo_dir: Path = ZOO_DIR) -> list[str]:
    """The entries of the zoo, by name."""
    return sorted(p.name for p in zoo_dir.iterdir() if (p / "config.yaml").is_file()) if zoo_dir.is_dir() else []


def resolve(run: str | Path) -> Path:
    """The folder of ``run``: ``zoo:NAME`` is the zoo's entry NAME (RunError naming the entries when there is
    none), anything else the path it names."""
    text = str(run)
    if not text.startswith(ZOO_PREFIX):
        return Path(run)
    name = text[len(ZOO_PREFIX) :]
    names = zoo_names()
    if name not in names:
        raise RunError(f"no zoo entry {name!r}; the zoo has {', '.join(names) or 'none'} (genlab zoo list shows them)")
    return ZOO_DIR / name


def zoo_name(run_dir: Path) -> str | None:
    """The entry's name when ``run_dir`` is a zoo entry, else None."""
    return run_dir.name if run_dir.resolve().parent == ZOO_DIR else None


def output_dir(run_dir: Path) -> Path:
    """Where tools write what they compute for a run (eval cards, metrics.jsonl): the run folder itself,
    or for a zoo entry (read-only, inside the package) ``<cache>/zoo/NAME``."""
    name = zoo_name(run_dir)
    return run_dir if name is None else cache_dir() / "zoo" / name


def reference(run_dir: Path) -> str:
    """How to name ``run_dir`` to a user: ``zoo:NAME`` for an entry, else its path."""
    name = zoo_name(run_dir)
    return str(run_dir) if name is None else f"{ZOO_PREFIX}{name}"
