"""Does an Azurite build accept what the current Azure Storage SDKs send? Run it and see.

Usage: python scripts/check_azurite.py PATH/TO/node_modules/.bin/azurite

Starts that Azurite (in memory, on free loopback ports, telemetry off, no
``--skipApiVersionCheck``), then with ``azure-storage-blob``, ``azure-storage-queue`` and
``azure-data-tables`` (whatever versions are installed in this interpreter) writes and reads
back one blob, one queue message and one table entity: the three services the Durable Azure
Storage backend uses. Prints each SDK's version and the ``x-ms-version`` it sent, and exits 0
only if all three round trips worked. docs/azure.md's "Running with real Core Tools + Azurite"
pins the version this accepted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

# Azurite's documented well-known development account: a public constant, not a secret.
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"azurite did not listen on {port}")


def main(azurite: str) -> int:
    """Run the three round trips against ``azurite``; 0 if all worked, 1 otherwise."""
    from azure.data.tables import __version__ as tables_version
    from azure.storage.blob import __version__ as blob_version
    from azure.storage.queue import __version__ as queue_version

    sent: dict[str, str] = {}
    ports = {name: _free_port() for name in ("blob", "queue", "table")}
    # In memory, so nothing is left behind (Azurite refuses --location together with it).
    proc = subprocess.Popen(
        [azurite, "--silent", "--inMemoryPersistence", "--disableTelemetry",
         "--blobHost", "127.0.0.1", "--blobPort", str(ports["blob"]),
         "--queueHost", "127.0.0.1", "--queuePort", str(ports["queue"]),
         "--tableHost", "127.0.0.1", "--tablePort", str(ports["table"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        for port in ports.values():
            _wait(port, deadline)
        version = subprocess.run([azurite, "--version"], capture_output=True, text=True).stdout.strip()
        results = {}
        for service, run in (("blob", _blob), ("queue", _queue), ("table", _table)):
            endpoint = f"http://127.0.0.1:{ports[service]}/{ACCOUNT}"
            try:
                run(endpoint, lambda api, service=service: sent.__setitem__(service, api))
                results[service] = "accepted"
            except Exception as exc:
                results[service] = f"FAILED: {str(exc).splitlines()[0][:160]}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"azurite {version}; azure-storage-blob {blob_version}, azure-storage-queue {queue_version}, "
          f"azure-data-tables {tables_version}")
    for service, verdict in results.items():
        print(f"  {service}: x-ms-version {sent.get(service, '?')}: {verdict}")
    return 0 if all(v == "accepted" for v in results.values()) else 1


def _blob(endpoint: str, record: Callable[[str], None]) -> None:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient(endpoint, credential={"account_name": ACCOUNT, "account_key": KEY})
    record(client.api_version)
    container = client.create_container("check")
    container.upload_blob("b", b"hello")
    assert container.download_blob("b").readall() == b"hello"


def _queue(endpoint: str, record: Callable[[str], None]) -> None:
    from azure.storage.queue import QueueServiceClient

    client = QueueServiceClient(endpoint, credential={"account_name": ACCOUNT, "account_key": KEY})
    record(client.api_version)
    queue = client.create_queue("check")
    queue.send_message("hello")
    assert [m.content for m in queue.receive_messages()] == ["hello"]


def _table(endpoint: str, record: Callable[[str], None]) -> None:
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.data.tables import TableServiceClient

    client = TableServiceClient(endpoint, credential=AzureNamedKeyCredential(ACCOUNT, KEY))
    record(client.api_version)
    table = client.create_table("check")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "v": "hello"})
    assert table.get_entity("p", "r")["v"] == "hello"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
