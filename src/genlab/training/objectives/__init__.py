"""Objectives: one Step per model family, each registered by its module (every module here
is imported on the first lookup of ``genlab.registry.OBJECTIVES``)."""

from __future__ import annotations

from genlab.config import ExampleRun
from genlab.registry import OBJECTIVES, BuilderRegistry


def resume_examples(registry: BuilderRegistry = OBJECTIVES) -> dict[str, tuple[ExampleRun, ...]]:
    """Every registered objective's small runs for the shared resume tests, by objective name (in name order).

    They are the ``resume_examples`` of its config class whose objective section names it (one
    inherited from another objective's config does not count); () for an objective without any.
    """
    return {
        entry.name: tuple(run for run in entry.config_cls.resume_examples if run.objective.get("name") == entry.name)
        for entry in sorted(registry.entries(), key=lambda entry: entry.name)
    }
