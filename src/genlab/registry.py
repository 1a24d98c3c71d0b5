"""Name -> (config dataclass, builder) tables for models, datasets and objectives.

A config section such as ``model: {name: conv_vae, latent_dim: 10}`` is resolved by
looking its ``name`` up here: the entry gives the dataclass that validates the other
keys and the function that builds the object. No if-chains on names anywhere else.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])

# Modules whose import registers entries; imported on first lookup so that
# `genlab.registry` itself stays import-light and free of cycles.
_PLUGIN_MODULES = (
    "genlab.data",
    "genlab.models",
    "genlab.training.objectives",
)


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the closest valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    name: str
    config_cls: type
    builder: Callable[..., Any]


class Registry(Generic[T]):
    """A table of named builders, each with the dataclass that configures it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, config_cls: type) -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, config_cls, builder)
            return builder

        return decorator

    def get(self, name: str) -> Entry:
        load_plugins()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)


def load_plugins() -> None:
    for module in _PLUGIN_MODULES:
        importlib.import_module(module)


MODELS: Registry = Registry("model")
DATASETS: Registry = Registry("dataset")
OBJECTIVES: Registry = Registry("objective")

register_model = MODELS.register
register_dataset = DATASETS.register
register_objective = OBJECTIVES.register
