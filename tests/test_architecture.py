"""Structural guarantees of the code base (issue 15), checked on the source with ``ast``:

* no import cycles among the project's modules (rai_audit, probes, finetune, dashboards), counting
  imports inside functions too: a lazy import still ties the modules together;
* the core (rai_audit.store, rai_audit.models, rai_audit.stats) never imports probes, finetune or
  dashboards, even inside a function; the app layer (CLI, runner, demo) may;
* no module above 500 lines.

An import ``a.b.c`` (or ``from a.b import c`` where ``c`` is a module) is an edge to that module;
``from a.b import name`` is an edge to ``a.b``. Only modules of the four packages are nodes.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("rai_audit", "probes", "finetune", "dashboards")
CORE = ("rai_audit.store", "rai_audit.models", "rai_audit.stats")
APP_ONLY = ("probes", "finetune", "dashboards")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if "__pycache__" not in path.parts:
                out[_module_name(path)] = path
    return out


def _known(name: str) -> str | None:
    """The module of the project that importing ``name`` executes last (the longest known prefix)."""
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names]
            for target in targets:
                known = _known(target)
                if known is not None and known != mod:
                    graph[mod].add(known)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def test_the_checker_sees_lazy_imports_and_cycles():
    assert "probes" in import_graph()["rai_audit.runner"]  # imported inside prepare_jobs only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (each line: the modules of one cycle):\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_core_never_imports_the_app_packages():
    bad = sorted(
        f"{mod} imports {target}"
        for mod, targets in import_graph().items() if mod.startswith(CORE)
        for target in targets if target.split(".")[0] in APP_ONLY
    )
    assert not bad, "\n".join(bad)


def test_no_module_above_500_lines():
    big = sorted(f"{p.relative_to(REPO)}: {n} lines" for p in modules().values()
                 if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES)
    assert not big, "\n".join(big)
