"""Every template parses, and a broken one is reported with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.templates import INFRA, BicepSyntaxError, parse, parse_all


def test_every_bicep_file_parses() -> None:
    parsed = parse_all()
    assert {"main.bicep", "app.bicep", "scheduler.bicep"} <= set(parsed)
    for name, template in parsed.items():
        assert template.get("resources") or template.get("modules"), f"{name} declares nothing"


def test_a_broken_template_is_reported_with_its_line(tmp_path: Path) -> None:
    lines = (INFRA / "app.bicep").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "minimumTlsVersion" in line)
    lines[at] = "    minimumTlsVersion: "  # a property with no value
    broken = tmp_path / "app.bicep"
    broken.write_text("\n".join(lines) + "\n")

    with pytest.raises(BicepSyntaxError) as caught:
        parse(broken)

    # The parser notices at the token after the gap: the next line.
    assert caught.value.path == broken
    assert caught.value.line in (at + 1, at + 2), str(caught.value)
    assert f"app.bicep:{caught.value.line}:" in str(caught.value)
