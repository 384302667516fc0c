"""devhost's packages import only downwards: each package's ``__init__`` docstring says which
packages it may import (a line ``May import: ...``), and no module imports anything else.

The order, bottom first: ``app`` (the user's app as read), ``core`` (the durable core),
``triggers`` and ``tools`` (side by side), ``host``; devhost's top level (``__main__``, the
``queues`` command) and ``devhost.testing`` sit above them all.
"""
from __future__ import annotations

import re

from tests.test_import_graph import REPO, project_graph

DEVHOST = REPO / "devhost"
PACKAGES = ("app", "core", "triggers", "tools", "host")
ABOVE = ("devhost", "devhost.__main__", "devhost.queues")  # the top level, with devhost.testing


def allowed(package: str) -> set[str]:
    """The packages ``package``'s docstring lets it import (``:mod:`devhost.x``` names)."""
    text = (DEVHOST / package / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^May import: (.*?)(?:\n\n|\"\"\")", text, re.M | re.S)
    assert match, f"devhost/{package}/__init__.py: the docstring must say 'May import: ...'"
    return {name.split(".")[1] for name in re.findall(r"devhost\.\w+", match.group(1))}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "devhost" and len(parts) > 1 and parts[1] in PACKAGES else None


def test_each_package_imports_only_the_packages_its_docstring_allows() -> None:
    graph = project_graph(REPO, ("devhost", "workflow"), ("function_app",))
    wrong = []
    for module, imports in sorted(graph.items()):
        package = package_of(module)
        if package is None:
            continue
        ok = allowed(package) | {package}
        for target in sorted(imports):
            if target.startswith("devhost") and target != "devhost" and package_of(target) not in ok:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], "imports against the layout: " + "; ".join(wrong)


def test_the_allowed_imports_go_down_in_one_order() -> None:
    for index, package in enumerate(PACKAGES):
        assert allowed(package) <= set(PACKAGES[:index]), f"devhost.{package} may import a package above it"
    assert allowed("core") == {"app"} and "host" not in allowed("tools") | allowed("triggers")


def test_core_imports_nothing_from_the_host_the_triggers_or_the_tools() -> None:
    graph = project_graph(REPO, ("devhost",), ())
    leaks = [f"{m} -> {t}" for m, targets in graph.items() if package_of(m) in ("app", "core")
             for t in targets if package_of(t) in ("host", "triggers", "tools")]
    assert leaks == []


def test_devhost_top_level_keeps_at_most_ten_modules_and_every_package_says_its_role() -> None:
    top = sorted(p.name for p in DEVHOST.glob("*.py"))
    assert len(top) <= 10, top
    for package in (*PACKAGES, "testing"):
        doc = (DEVHOST / package / "__init__.py").read_text(encoding="utf-8")
        assert doc.startswith('"""') and len(doc.split("\n", 1)[0]) > 20, package
