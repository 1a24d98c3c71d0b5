"""Name -> entry tables for models, datasets, objectives, regularisers and metrics, and how they fill up.

A config section such as ``model: {name: conv_vae, latent_dim: 10}`` is resolved by
looking its ``name`` up here: the entry gives the dataclass that validates the other
keys and the function that builds the object. No if-chains on names anywhere else.

Every table fills up the same way: on its first lookup it imports every module of its
package (:func:`import_modules`), whose decorators register their entries. A new model,
dataset, objective or metric is a new module in that package; no list names it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])
E = TypeVar("E")


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def import_modules(package: str) -> None:
    """Import ``package`` and each module directly inside it, in name order, so that their decorators register.

    An error while importing one says which module was imported for what, on top of its own traceback.
    """
    root = importlib.import_module(package)
    for module in pkgutil.iter_modules(root.__path__, prefix=f"{package}."):
        try:
            importlib.import_module(module.name)
        except Exception as err:
            if sys.version_info >= (3, 11):  # exception notes are new in 3.11
                err.add_note(f"(while importing {module.name} to find what {package} registers)")
            raise


class Registry(Generic[E]):
    """A table of named entries of one kind, filled by importing every module of ``package`` on first lookup.

    Importing on first lookup, not when this module is imported, keeps ``genlab.registry``
    at the bottom of the import graph: the packages it names import it, never the reverse.
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._entries: dict[str, E] = {}
        self._discovered = False

    def add(self, name: str, entry: E) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> E:
        self.discover()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def entries(self) -> list[E]:
        """Every entry, in the order registered."""
        self.discover()
        return list(self._entries.values())

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # first: a module that looks a name up while it is imported sees the table so far
        try:
            import_modules(self.package)
        except BaseException:
            self._discovered = False  # the next lookup raises the same error rather than use a partial table
            raise


@dataclass(frozen=True)
class Entry:
    name: str
    config_cls: type[Any]
    builder: Callable[..., Any]


class BuilderRegistry(Registry[Entry]):
    """Builders, each with the dataclass that configures it (models, datasets, objectives)."""

    def register(self, name: str, config_cls: type) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            self.add(name, Entry(name, config_cls, builder))
            return builder

        return decorator


MODELS = BuilderRegistry("model", "genlab.models")
DATASETS = BuilderRegistry("dataset", "genlab.data")
OBJECTIVES = BuilderRegistry("objective", "genlab.training.objectives")
REGULARISERS = BuilderRegistry("regulariser", "genlab.training.regularisers")

register_model = MODELS.register
register_dataset = DATASETS.register
register_objective = OBJECTIVES.register
register_regulariser = REGULARISERS.register
