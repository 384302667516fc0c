"""Fixtures for the offline infrastructure checks: the parsed templates and the tools that run
from their own virtualenv (``.venv-infra``, built by ``make test``; ``INFRA_VENV`` overrides)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import REPO, parse_all

INFRA_VENV = Path(os.environ.get("INFRA_VENV", REPO / ".venv-infra"))


def _tool(name: str) -> Path:
    path = INFRA_VENV / "bin" / name
    if not path.exists():
        pytest.skip(
            f"{path} is missing: the infra tool virtualenv could not be built "
            f"(`make infra-venv` installs requirements-infra.txt into {INFRA_VENV})"
        )
    return path


@pytest.fixture(scope="session")
def templates() -> dict[str, dict[str, Any]]:
    return parse_all()


@pytest.fixture(scope="session")
def checkov() -> Path:
    return _tool("checkov")


@pytest.fixture(scope="session")
def zizmor() -> Path:
    return _tool("zizmor")
