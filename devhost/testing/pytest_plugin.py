"""pytest fixtures for :func:`devhost.testing.run_app` (needs pytest-asyncio).

Enable them in the ``conftest.py`` at the root of your tests (``pytest_plugins =
["devhost.testing.pytest_plugin"]``), or import the three fixtures into a test module. Override
``devhost_app_dir`` and ``devhost_app_settings`` like any fixture, or parametrize them:

    @pytest.mark.parametrize("devhost_app_settings", [{"WORKFLOW_TIMEOUT_SECONDS": "604800"}])
    async def test_a_week_passes(devhost_app: TestHost) -> None:
        await devhost_app.post("/api/start/k")
        await devhost_app.advance(days=7, seconds=1)
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devhost.testing import TestHost, run_app


@pytest.fixture
def devhost_app_dir(request: pytest.FixtureRequest) -> Path:
    """The app directory (its ``function_app.py``): by default pytest's root directory."""
    return Path(request.config.rootpath)


@pytest.fixture
def devhost_app_settings() -> dict[str, str]:
    """The app settings of the run (default none: the process environment as it is)."""
    return {}


@pytest_asyncio.fixture
async def devhost_app(devhost_app_dir: Path, devhost_app_settings: dict[str, str]
                      ) -> AsyncIterator[TestHost]:
    """The app running under :func:`~devhost.testing.run_app`, fresh for each test."""
    async with run_app(devhost_app_dir, settings=devhost_app_settings) as host:
        yield host
