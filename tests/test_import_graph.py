"""Imports only go down: the project's modules (devhost/, workflow/, function_app) import one
another without a circle.

Every import statement counts, wherever it is: at module level, inside a function (a lazy
import still ties the two modules together) and under ``if TYPE_CHECKING:`` (a type-only
circle still means neither module can be read, or moved, without the other).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("devhost", "workflow")
MODULES = ("function_app",)


def module_files(root: Path, packages: Iterable[str], modules: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` file of ``packages`` and ``modules``."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    for module in modules:
        found[module] = root / f"{module}.py"
    return found


def _resolve_from(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports, at any depth of its syntax tree.

    ``from package import name`` counts as importing ``package.name`` when that is a module,
    else ``package``; importing ``a.b.c`` also runs ``a`` and ``a.b`` (package ``__init__``s),
    which count too.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, path.name == "__init__.py", node)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names
                           if f"{base}.{alias.name}" in known)
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix in known:
                edges.add(prefix)
    # A package's modules run its __init__ first anyway: that edge is not a circle.
    return {edge for edge in edges if edge != name and not name.startswith(edge + ".")}


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module, as a path that shows one
    circle through it (``a -> b -> a``); an empty list when the graph has no circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graphs here are a few dozen nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(graph, component) for component in components]


def _circle_in(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    path = [start]
    seen = {start}
    node = start
    while True:
        succ = min(s for s in graph[node] if s in component)
        path.append(succ)
        if succ in seen:
            return path[path.index(succ):]
        seen.add(succ)
        node = succ


def project_graph(root: Path, packages: Iterable[str], modules: Iterable[str]) -> dict[str, set[str]]:
    known = module_files(root, packages, modules)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_project_modules_import_each_other_without_a_circle() -> None:
    graph = project_graph(REPO, PACKAGES, MODULES)
    assert "devhost.core.engine" in graph and "workflow.lookup" in graph and "function_app" in graph
    cycles = find_cycles(graph)
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_circle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def late():\n    from pkg import high\n    return high\n",
        "pkg/high.py": "from pkg.low import late\n",
    })
    cycles = find_cycles(project_graph(tmp_path, ["pkg"], []))
    assert cycles == [["pkg.high", "pkg.low", "pkg.high"]]


def test_a_circle_through_a_type_checking_or_relative_import_is_found(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/errors.py": ("from typing import TYPE_CHECKING\n"
                          "if TYPE_CHECKING:\n    from .status import Status\n"),
        "pkg/status.py": "from .inputs import Key\n",
        "pkg/inputs.py": "from . import errors\n",
        "app.py": "import pkg.status\n",
    })
    graph = project_graph(tmp_path, ["pkg"], ["app"])
    assert graph["app"] == {"pkg", "pkg.status"}
    assert find_cycles(graph) == [["pkg.errors", "pkg.status", "pkg.inputs", "pkg.errors"]]


def test_imports_that_only_go_down_are_no_circle(tmp_path: Path) -> None:
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.api import run\n",
        "pkg/api.py": "from pkg import core\nimport json\n",
        "pkg/core.py": "import os\n",
    })
    graph = project_graph(tmp_path, ["pkg"], [])
    assert graph == {"pkg": {"pkg.api"}, "pkg.api": {"pkg.core"}, "pkg.core": set()}
    assert find_cycles(graph) == []
