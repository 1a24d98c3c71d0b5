"""The import graph of genlab has no circle and no arrow back up.

The graph is read from the source with ``ast``, not from ``sys.modules``: every
``import genlab.x``, ``from genlab.x import y`` and relative import counts, at the top of a
module, inside a function or under ``if TYPE_CHECKING:`` (a type named across a boundary is
still a dependency). Each module may import its own layer and the layers below it.

Not in the graph: the registries' discovery (``genlab.registry.import_modules``) imports
packages by name at run time; that is the plugin direction, a package registering itself
into the table below it, and it never makes the table depend on what fills it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import genlab

# Bottom to top; each entry is one layer, named by genlab's top-level modules and packages.
# Names in one layer may import each other; the cycle tests keep them from circling.
LAYERS: list[tuple[str, ...]] = [
    # Foundation: no genlab package above it. config imports registry; registry imports nothing.
    ("errors", "config", "registry", "distributed", "images", "download", "plotting", "gaussians", "discrete"),
    ("data",),  # data sets and their specs
    ("runs",),  # run folders, checkpoints, exports: read and written only here
    ("models",),  # networks: they import no loss (the Gaussian densities they need are in gaussians)
    ("losses",),  # pure loss functions
    ("training",),  # the one loop and the objectives; it writes runs
    ("latent",),  # tools on trained models; training's snapshot grids stay below them
    ("metrics",),  # metrics train classifiers (cas) and encode latents (disentanglement)
    ("api", "genlab"),  # train, load, load_step; genlab is the package's __init__, which re-exports them
    ("experiments",),  # paper claims run end to end
    ("studio",),
    ("cli", "__main__"),  # the CLI starts the studio
]

SRC = Path(genlab.__file__).parent


def module_name(path: Path) -> str:
    """``src/genlab/metrics/fid.py`` -> ``genlab.metrics.fid``; a package's __init__ is the package."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def genlab_modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The genlab modules of ``known`` that ``source`` (module ``module``) imports, wherever the import stands.

    ``from a.b import c`` is an import of module ``a.b.c`` when that is a module, else of ``a.b``;
    a dotted name that is no module resolves to its longest known prefix.
    """
    package = module if is_package else module.rpartition(".")[0]

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names if alias.name.split(".")[0] == "genlab"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: one level is the current package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "genlab":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else resolve(target))
    return {m for m in found if m is not None and m != module}


def import_graph() -> dict[str, set[str]]:
    modules = genlab_modules()
    known = set(modules)
    return {m: imports_of(p.read_text(), m, p.name == "__init__.py", known) for m, p in modules.items()}


def top(module: str) -> str:
    """The top-level genlab module or package ``module`` belongs to (``genlab`` for the package's own __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None; depth-first, in sorted order so the report is stable."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between top-level modules and packages, with each module's imports merged into its package's."""
    merged: dict[str, set[str]] = {}
    for module, imported in graph.items():
        merged.setdefault(top(module), set()).update(top(m) for m in imported if top(m) != top(module))
    return merged


def layer_of() -> dict[str, int]:
    return {name: level for level, names in enumerate(LAYERS) for name in names}


def upward_imports(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Each import of a module from a layer above its own, as ``a (layer) imports b (layer)``."""
    return [f"{m} (layer {layers[top(m)]}: {', '.join(LAYERS[layers[top(m)]])}) imports "
            f"{d} (layer {layers[top(d)]}: {', '.join(LAYERS[layers[top(d)]])})"
            for m, imported in sorted(graph.items()) for d in sorted(imported) if layers[top(d)] > layers[top(m)]]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


# ----------------------------------------------------------------------------- the house


def test_every_module_has_a_layer(graph):
    tops = {top(m) for m in graph}
    assert not tops - set(layer_of()), f"put these in LAYERS: {sorted(tops - set(layer_of()))}"
    assert not set(layer_of()) - tops, f"LAYERS names what genlab no longer has: {sorted(set(layer_of()) - tops)}"
    assert len(layer_of()) == sum(map(len, LAYERS)), "a name appears in two layers"


def test_no_import_cycle_between_modules(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages(graph):
    cycle = find_cycle(package_graph(graph))
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_no_module_imports_from_a_layer_above(graph):
    upward = upward_imports(graph, layer_of())
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


# ----------------------------------------------------------------------------- the test can fail


def test_the_graph_holds_known_imports(graph):
    assert "genlab.runs.checkpoint" in graph["genlab.training.loop"]  # from genlab.runs import checkpoint as ckpt
    assert "genlab.runs.folder" in graph["genlab.training.loop"]  # from genlab.runs.folder import ...
    assert "genlab.plotting" in graph["genlab.metrics.conditional"]  # inside a function
    assert "genlab.metrics.evaluate" in graph["genlab.metrics.disentanglement"]  # under TYPE_CHECKING
    assert "genlab.distributed" in graph["genlab.training.loop"]  # from genlab import distributed
    assert "genlab.api" in graph["genlab"]


def test_the_builder_reads_every_form_of_import():
    known = {"genlab", "genlab.a", "genlab.a.x", "genlab.a.y", "genlab.b", "genlab.b.z"}
    source = """
import os
import genlab.b.z
from genlab.a import x, helper
from . import y
from ..b import z as zed
if TYPE_CHECKING:
    from genlab.b import Thing
def f():
    import genlab.a.y.missing
"""
    assert imports_of(source, "genlab.a.w", False, known) == {"genlab.b.z", "genlab.a.x", "genlab.a", "genlab.a.y",
                                                              "genlab.b"}
    assert imports_of("from .x import q", "genlab.a", True, known) == {"genlab.a.x"}


def test_a_cycle_and_an_upward_import_are_reported():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    layers = layer_of()
    upward = upward_imports({"genlab.runs.folder": {"genlab.training.loop", "genlab.config"}}, layers)
    assert len(upward) == 1 and upward[0].startswith("genlab.runs.folder (layer 2: runs) imports genlab.training.loop")
