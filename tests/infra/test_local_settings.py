"""The local settings variants (copy one to local.settings.json): Azurite, the default, and the
Durable Task Scheduler emulator. Their shape is what Core Tools reads, their values are what the
app and the deployed infrastructure use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import REPO, app_settings, host_config_with
from workflow.settings import TIMEOUT_ENV, Settings

AZURITE = REPO / "local.settings.json.example"
DTS_EMULATOR = REPO / "local.settings.dts.json.example"


def _values(path: Path) -> dict[str, str]:
    document = json.loads(path.read_text())
    assert document["IsEncrypted"] is False
    values = document["Values"]
    assert all(isinstance(v, str) for v in values.values()), "Core Tools reads every value as a string"
    return values


@pytest.mark.parametrize("variant", [AZURITE, DTS_EMULATOR], ids=["azurite", "dts-emulator"])
def test_variant_runs_the_python_app_on_local_storage(variant: Path) -> None:
    values = _values(variant)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    # Azurite's well-known development account: no key is written into the file.
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert not any("AccountKey=" in v for v in values.values())
    Settings.from_env({TIMEOUT_ENV: values[TIMEOUT_ENV]})


def test_azurite_variant_keeps_the_azure_storage_backend() -> None:
    values = _values(AZURITE)
    host = json.loads((REPO / "host.json").read_text())
    durable = host_config_with(values, host)["extensions"]["durableTask"]
    assert durable.get("storageProvider", {}).get("type") is None


def test_dts_emulator_variant_switches_the_backend_exactly_as_the_deployment_does(templates: dict[str, Any]) -> None:
    values = _values(DTS_EMULATOR)
    deployed = {n: s["value"] for n, s in app_settings(templates["app.bicep"]).items() if s["when"] == "useScheduler"}
    overrides = {n: v for n, v in values.items() if n.startswith("AzureFunctionsJobHost__")}
    assert overrides == {n: v for n, v in deployed.items() if n.startswith("AzureFunctionsJobHost__")}

    host = json.loads((REPO / "host.json").read_text())
    durable = host_config_with(values, host)["extensions"]["durableTask"]
    assert durable["storageProvider"]["type"] == "azureManaged"
    connection = values[durable["storageProvider"]["connectionStringName"]]
    # The emulator's gRPC port, no authentication (it is local and in memory).
    assert dict(part.split("=", 1) for part in connection.split(";")) == {
        "Endpoint": "http://localhost:8080",
        "Authentication": "None",
    }
