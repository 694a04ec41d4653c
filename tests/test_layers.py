"""``perception/`` is layered in the direction data flows, lowest first:

1. foundation: ``perception.classes``, ``perception.config``, ``perception.contract`` and the small
   torch-free modules both halves share (``runtime``: ONNX Runtime session options, which the service
   imports too; ``machine``: this machine in words; ``timing``: timing ONNX models);
2. data: ``perception.data`` (data sets, transforms, the loader and ``Targets``, the collated batch);
3. model: ``perception.model``;
4. losses: ``perception.losses``, ``perception.weighting``;
5. evaluation: ``perception.evaluate`` (metrics, the runners that score a torch checkpoint or an
   exported ONNX file, the CLI entry). It sits *below* training on purpose: the trainer is to call a
   quick held-out evaluation every N steps, so training may import evaluation, never the reverse;
6. training: ``perception.train``;
7. export: ``perception.card``, ``perception.export`` (graph, post-processing, verification,
   precision variants, ...);
8. top: ``perception.bench``, ``perception.study``, ``perception.cli``, ``perception.client``.

A module may import from its own layer or a lower one, never a higher one; there is no import cycle
among modules (inside a layer neither); only ``perception.bench`` imports the service (it
benchmarks it). Imports are read with ``ast`` (nothing is executed), at module level and inside
functions alike. A project import inside a function says why on its line (a ``#`` comment): it is
allowed only to keep an optional heavy dependency out of start-up.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = "perception"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("perception", "perception.classes", "perception.config", "perception.contract",
                    "perception.runtime", "perception.machine", "perception.timing")),
    ("data", ("perception.data",)),
    ("model", ("perception.model",)),
    ("losses", ("perception.losses", "perception.weighting")),
    ("evaluation", ("perception.evaluate",)),
    ("training", ("perception.train",)),
    ("export", ("perception.card", "perception.export")),
    ("top", ("perception.bench", "perception.study", "perception.cli", "perception.client")),
)  # fmt: skip

# Packages outside perception/ that a perception module may import, and who may.
OUTSIDE = {"service": ("perception.bench",)}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool
    commented: bool
    implicit: bool  # a package that importing ``target``'s submodule runs first: counts for cycles only

    def where(self) -> str:
        return f"{self.importer} (line {self.line}) imports {self.target}"


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def layer_of(module: str) -> int | None:
    """Index of the layer whose longest prefix holds ``module``; None when none does."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # the bare package name "perception" is its (empty) __init__ only, not everything under it
            matches = module == prefix if prefix == PROJECT else _within(module, prefix)
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_sources(root: Path = REPO / PROJECT) -> dict[str, tuple[str, bool]]:
    """{module name: (source, is a package __init__)} for every .py file under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if package else parts)] = (path.read_text(), package)
    return out


def _function_nodes(tree: ast.AST) -> set[int]:
    inner = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner.update(id(node) for node in ast.walk(func) if isinstance(node, ast.Import | ast.ImportFrom))
    return inner


def imports_of(module: str, source: str, package: bool, known: set[str]) -> list[Import]:
    """Every project (and ``OUTSIDE``) import of one module. Importing ``a.b.c`` also runs ``a`` and
    ``a.b``: those packages are targets too, unless they enclose the importer (they ran before it)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    inner = _function_nodes(tree)
    base = module if package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                parent = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                parent = node.module or ""
            named = [parent] + [f"{parent}.{a.name}" for a in node.names if f"{parent}.{a.name}" in known]
        else:
            continue
        targets: dict[str, bool] = {}  # target: implicit
        for name in named:
            if name.split(".")[0] not in (PROJECT, *OUTSIDE):
                continue
            for ancestor in _ancestors(name):
                if not _within(module, ancestor):
                    targets.setdefault(ancestor, True)
            targets[name] = False
        targets.pop(module, None)
        commented = "#" in lines[node.lineno - 1]
        found += [
            Import(module, t, node.lineno, id(node) in inner, commented, implicit) for t, implicit in targets.items()
        ]
    return found


def project_imports(sources: Mapping[str, tuple[str, bool]]) -> list[Import]:
    known = set(sources)
    return [imp for module, (source, package) in sources.items() for imp in imports_of(module, source, package, known)]


def violations(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Every breach of the rules in the module docstring, as readable lines."""
    problems = []
    for module in sources:
        if layer_of(module) is None:
            problems.append(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    graph: dict[str, set[str]] = {module: set() for module in sources}
    for imp in project_imports(sources):
        if imp.implicit:
            if imp.target in graph:
                graph[imp.importer].add(imp.target)
            continue
        outside = imp.target.split(".")[0]
        if outside in OUTSIDE:
            if not any(_within(imp.importer, allowed) for allowed in OUTSIDE[outside]):
                problems.append(f"{imp.where()}: only {', '.join(OUTSIDE[outside])} may import {outside}")
            continue
        if imp.target not in sources:
            problems.append(f"{imp.where()}, which does not exist")
            continue
        graph[imp.importer].add(imp.target)
        low, high = layer_of(imp.importer), layer_of(imp.target)
        if low is not None and high is not None and high > low:
            problems.append(f"{imp.where()}: layer {LAYERS[low][0]!r} may not import layer {LAYERS[high][0]!r}")
        if imp.in_function and not imp.commented:
            problems.append(f"{imp.where()} inside a function with no '# reason' comment on its line")
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        problems.append("import cycle: " + " -> ".join(reversed(error.args[1])))
    return problems


def test_every_module_sits_in_a_layer_and_imports_only_its_own_or_lower_ones_without_cycles():
    sources = module_sources()
    assert len(sources) > 40 and "perception.train" in sources and "perception.model.net" in sources
    problems = violations(sources)
    assert not problems, "\n".join(problems)


def test_evaluation_sits_below_training_and_export_above_both():
    order = {name: index for index, (name, _) in enumerate(LAYERS)}
    assert layer_of("perception.evaluate.runners") == order["evaluation"] < order["training"]
    assert layer_of("perception.train") == order["training"] < layer_of("perception.export.verify")
    assert layer_of("perception") == 0 and layer_of("perception.bench.run") == order["top"]


def synthetic(**modules: str) -> dict[str, tuple[str, bool]]:
    """A tiny project: keyword ``perception__model__net`` is module ``perception.model.net``."""
    packages = {"perception", "perception.data", "perception.model", "perception.export"}
    sources = {name: ("", True) for name in packages}
    for key, source in modules.items():
        name = key.replace("__", ".")
        sources[name] = (source, name in packages)
    return sources


def test_the_checker_names_an_upward_import_a_cycle_and_a_server_import():
    clean = synthetic(perception__classes="", perception__model__net="from perception.classes import X\n",
                      perception__train="import perception.model.net\n")  # fmt: skip
    assert violations(clean) == []

    upward = synthetic(perception__classes="", perception__train="",
                       perception__model__net="from perception.train import train\n")  # fmt: skip
    assert violations(upward) == [
        "perception.model.net (line 1) imports perception.train: layer 'model' may not import layer 'training'"
    ]

    cycle = synthetic(perception__export__graph="from perception.export.verify import compare\n",
                      perception__export__verify="from perception.export.graph import build\n")  # fmt: skip
    (problem,) = violations(cycle)
    assert problem.startswith("import cycle: ") and {"perception.export.graph", "perception.export.verify"} <= set(
        problem.removeprefix("import cycle: ").split(" -> ")
    )

    server = synthetic(perception__card="from service.engine import session_options\n")
    assert violations(server) == [
        "perception.card (line 1) imports service.engine: only perception.bench may import service"
    ]


def test_the_checker_sees_imports_inside_functions_and_through_parent_packages():
    hidden = synthetic(perception__card="", perception__data__loader="def f():\n    from perception.card import x\n")
    assert violations(hidden) == [
        "perception.data.loader (line 2) imports perception.card: layer 'data' may not import layer 'export'",
        "perception.data.loader (line 2) imports perception.card inside a function with no '# reason' comment "
        "on its line",
    ]
    reasoned = synthetic(perception__classes="", perception__model__net=(
        "def f():\n    import perception.classes  # optional heavy dependency\n"))  # fmt: skip
    assert violations(reasoned) == []

    # importing perception.export.graph runs perception/export/__init__.py first: a cycle through it
    through_package = synthetic(perception__card="import perception.export.graph\n", perception__export__graph="")
    through_package["perception.export"] = ("from perception.card import render\n", True)
    assert any(p.startswith("import cycle:") for p in violations(through_package))


@pytest.mark.parametrize("module", ["perception.nowhere", "perception.data2.x"])
def test_a_module_outside_every_layer_is_named(module):
    assert f"{module} is in no layer: add it to LAYERS in tests/test_layers.py" in violations(
        {**synthetic(), module: ("", False)}
    )
