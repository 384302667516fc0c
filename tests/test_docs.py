"""The README and docs/ hold together: every relative link reaches a file of the repository, and
every ``#anchor`` names a heading of the page it points at (as GitHub renders it)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "tests" / "golden" / "README.md"]

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation other than ``-`` and ``_`` dropped, each space
    a ``-`` (so ``Core Tools + Azurite`` gives ``core-tools--azurite``); repeats get ``-1``, ``-2``."""
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", page.read_text()).splitlines():
        heading = re.match(r"#{1,6} +(.*?) *#*$", line)
        if not heading:
            continue
        text = re.sub(r"[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}", "", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def links(page: Path) -> list[str]:
    return _LINK.findall(_FENCE.sub("", page.read_text()))


def test_the_anchor_rule_matches_githubs_for_the_headings_used_here() -> None:
    page = REPO / "docs" / "azure.md"
    assert "running-with-real-core-tools--azurite" in anchors(page)
    assert "deploy-to-azure" in anchors(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with that id in {resolved.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_mutation_table_is_the_one_scripts_mutants_prints() -> None:
    spec = importlib.util.spec_from_file_location("mutants", REPO / "scripts" / "mutants.py")
    assert spec and spec.loader
    mutants = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = mutants  # its dataclasses look their module up
    try:
        spec.loader.exec_module(mutants)
    finally:
        del sys.modules["mutants"]
    page = (REPO / "docs" / "mutation-testing.md").read_text()
    assert mutants.table().strip() in page, (
        "docs/mutation-testing.md's table is not what `python scripts/mutants.py --table` prints: "
        "paste that output over it")
