"""Azurite for tests: the project's pinned emulator, one fresh instance per test on a free port.

Without npm the fixtures skip with the reason; ``DEVHOST_REQUIRE_AZURITE=1`` (set by ``.ci/run``)
turns that skip into a failure.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.host.process import free_port
from devhost.triggers import azurite
from devhost.triggers.queues import development_connection_string


@pytest.fixture(scope="session")
def azurite_binary() -> Path:
    """The project's pinned Azurite, installed with npm on first use."""
    found = azurite.binary()
    if found:
        return found
    reason = azurite.missing_reason()
    if reason:
        if os.environ.get("DEVHOST_REQUIRE_AZURITE") == "1":
            pytest.fail(f"DEVHOST_REQUIRE_AZURITE=1 but {reason}")
        pytest.skip(f"end-to-end queue tests need Azurite: {reason}")
    return azurite.install()


@pytest.fixture
def storage(azurite_binary: Path, tmp_path: Path) -> Iterator[str]:
    """A fresh Azurite queue service on a free port; yields its connection string."""
    port = free_port()
    emulator = azurite.Azurite(port, tmp_path / "azurite").start(executable=azurite_binary)
    try:
        yield development_connection_string(port)
    finally:
        emulator.stop()


class Queues:
    """Test-side access to the emulator's queues (sync SDK client, as a producer would use)."""

    def __init__(self, conn: str) -> None:
        from azure.storage.queue import QueueServiceClient

        from devhost.triggers.queues import AZURITE_API_VERSION

        self.service = QueueServiceClient.from_connection_string(
            conn, api_version=AZURITE_API_VERSION)

    def send(self, queue: str, text: str, *, base64_encode: bool = True) -> None:
        client = self.service.get_queue_client(queue)
        try:
            client.create_queue()
        except Exception:  # already exists
            pass
        client.send_message(base64.b64encode(text.encode()).decode() if base64_encode else text)

    def texts(self, queue: str) -> list[str]:
        """Every message text on the queue, without taking any (peek reads up to 32)."""
        client = self.service.get_queue_client(queue)
        try:
            return [m.content for m in client.peek_messages(max_messages=32)]
        except Exception:  # the queue does not exist
            return []

    def count(self, queue: str) -> int:
        try:
            props = self.service.get_queue_client(queue).get_queue_properties()
        except Exception:
            return 0
        return int(props.approximate_message_count or 0)
