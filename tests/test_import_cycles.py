"""No import cycles between the project's own modules (``aigc_apps`` and ``apps``).

A cycle means two modules can only be read, tested and changed together, and which one
Python finishes first depends on who imported first. The rule (issue 25) reads every import
statement in the source, with no import run:

- every ``import`` and ``from ... import`` counts, at module level, inside a function or a
  class, and under ``if TYPE_CHECKING:`` too: a type that names a module is a dependency
  on it all the same (the reader, mypy and any later runtime use follow it), so a cycle
  is not broken by moving half of it into a type-checking block;
- ``import a.b.c`` counts as importing ``a.b.c``;
- ``from pkg import sub`` where ``pkg.sub`` is a module counts as importing ``pkg.sub``
  only (its package's ``__init__`` runs first anyway); any other name from ``pkg`` counts
  as importing ``pkg`` (its ``__init__``);
- relative imports are resolved against the importing module's package;
- imports of anything outside the two packages are ignored, and so is a module naming
  itself.

The strongly connected components of that graph (Tarjan's algorithm, iterative) must all
be single modules; a failure lists each cycle's modules and the import lines that close it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("aigc_apps", "apps")

Graph = dict[str, dict[str, str]]  # module -> {imported module: "path:line" of one import}


def project_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root`` by dotted name (a package by its own)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(module: str, path: Path, tree: ast.AST, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(module imported, line)`` for each import statement of ``tree`` (see the rule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    modules = project_modules(root, packages)
    known = set(modules)
    graph: Graph = {m: {} for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for target, line in imported(module, path, tree, known):
            if target in known and target != module:
                graph[module].setdefault(target, f"{path.relative_to(root)}:{line}")
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def describe(graph: Graph, component: list[str]) -> str:
    inside = set(component)
    edges = [f"    {a} -> {b} ({where})" for a in component
             for b, where in sorted(graph[a].items()) if b in inside]
    return f"  {' <-> '.join(component)}\n" + "\n".join(edges)


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the walk found the project's modules
    found = cycles(graph)
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(
        describe(graph, c) for c in found
    )


def test_the_walk_finds_a_cycle_and_follows_the_rule(tmp_path: Path) -> None:
    """A cycle through a function-level import and one through ``TYPE_CHECKING`` are both
    found; ``from pkg import sub`` of a module is an edge to ``pkg.sub``, not ``pkg``."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from demo.c import C\n",
        "a.py": "def f():\n    from . import b\n",
        "b.py": "from .a import f\n",
        "c.py": "C = 1\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.d\n",
        "d.py": "from demo import sub\nfrom demo.c import C\n",
        "sub/__init__.py": "",
        "sub/e.py": "from .. import a\nfrom ..sub import e\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(tmp_path, ["demo"])
    assert graph["demo.a"] == {"demo.b": "demo/a.py:2"}
    assert set(graph["demo.d"]) == {"demo.sub", "demo.c"}  # sub is a package: itself
    assert set(graph["demo.sub.e"]) == {"demo.a"}  # relative, and never itself
    assert cycles(graph) == [["demo.a", "demo.b"], ["demo.c", "demo.d"]]
