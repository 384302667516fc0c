"""checkov scans infra/ with zero failed checks; every suppression sits inside the resource it
excuses and says why; and a weakened or broken template makes the scan fail.

checkov runs from its own virtualenv (see conftest), offline (``--skip-download``). It parses
Bicep with its own pinned pycep-parser (0.5.1, older than the tests' 0.7.1), which rejects ten or
more consecutive comment lines: a file it cannot parse is silently not scanned, hence the
``parsing_errors == []`` assertion."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import INFRA, REPO, parse

SKIP = re.compile(r"//\s*checkov:skip=(?P<check>CKV2?_[A-Z]+_\d+)(?::\s*(?P<reason>.*))?")


def _scan(checkov: Path, directory: Path) -> dict[str, Any]:
    run = subprocess.run(
        [str(checkov), "-d", str(directory), "--framework", "bicep", "secrets", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=300, cwd=directory,
    )
    assert run.stdout.strip(), f"checkov printed nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    bicep = next(r for r in reports if r.get("check_type") == "bicep")
    bicep["exit_code"] = run.returncode
    return bicep


@pytest.fixture(scope="module")
def infra_report(checkov: Path) -> dict[str, Any]:
    return _scan(checkov, INFRA)


def test_checkov_finds_no_failed_check_in_infra(infra_report: dict[str, Any]) -> None:
    report = infra_report
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["results"]["parsing_errors"] == []
    assert report["summary"]["passed"] >= 15
    assert report["exit_code"] == 0


def test_every_suppression_is_inside_its_resource_with_a_reason(infra_report: dict[str, Any]) -> None:
    written = set()
    for path in sorted(INFRA.rglob("*.bicep")):
        template = parse(path)
        spans = {
            name: (r["__start_line__"], r["__end_line__"]) for name, r in template.get("resources", {}).items()
        }
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP.search(line)
            if not match:
                continue
            owner = [name for name, (start, end) in spans.items() if start < number < end]
            assert owner, f"{path.name}:{number}: {match['check']} is not inside a resource"
            assert match["reason"] and len(match["reason"]) >= 30, f"{path.name}:{number}: {match['check']} has no reason"
            written.add((match["check"], owner[0]))

    skipped = {(c["check_id"], c["resource"].rsplit(".", 1)[1]) for c in infra_report["results"]["skipped_checks"]}
    # Every suppression is used by checkov (none stale), and checkov skipped nothing else.
    assert skipped == written


def test_a_weakened_or_broken_template_fails_the_scan(checkov: Path, tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(INFRA, infra)
    shutil.copy(REPO / "host.json", tmp_path / "host.json")
    app = infra / "app.bicep"
    weakened = app.read_text().replace("httpsOnly: true", "httpsOnly: false").replace(
        "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'"
    )
    assert weakened != app.read_text()
    app.write_text(weakened)
    (infra / "broken.bicep").write_text("resource broken 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n}\n")

    report = _scan(checkov, infra)

    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert {"CKV_AZURE_70", "CKV_AZURE_44"} <= failed, failed  # HTTPS only; storage TLS 1.2
    assert [Path(p).name for p in report["results"]["parsing_errors"]] == ["broken.bicep"]
    assert report["exit_code"] != 0
