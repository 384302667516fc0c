"""The facts issue #10 asks of infra/, read from the parsed templates: Flex Consumption with a
Python runtime in functionAppConfig, identity-only storage and telemetry, the exact role ids,
no secrets, and settings that agree with host.json and the app."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import (
    DURABLE_TASK_DATA_CONTRIBUTOR,
    env_mapping,
    parameter_file,
    resolve_parameter,
    INFRA,
    MONITORING_METRICS_PUBLISHER,
    REPO,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    app_settings,
    body,
    host_config_with,
    parse,
    render,
    resources_of_type,
    variable,
    violations,
)
from workflow.settings import TIMEOUT_ENV, Settings

# App settings the Flex Consumption plan rejects or ignores: runtime and version go in
# functionAppConfig, the package in its deployment container, scale in scaleAndConcurrency.
FLEX_REJECTED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
}


@pytest.fixture(scope="module")
def app(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["app.bicep"]


@pytest.fixture(scope="module")
def main(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["main.bicep"]


@pytest.fixture(scope="module")
def scheduler(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["scheduler.bicep"]


@pytest.fixture(scope="module")
def site(app: dict[str, Any]) -> dict[str, Any]:
    (site,) = resources_of_type(app, "Microsoft.Web/sites").values()
    return body(site)


@pytest.fixture(scope="module")
def host_json() -> dict[str, Any]:
    return json.loads((REPO / "host.json").read_text())


def _param(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["parameters"][name]


def _decorator(param: dict[str, Any], kind: str) -> Any:
    return next((d["argument"] for d in param["decorators"] if d["type"] == kind), None)


def test_plan_is_flex_consumption_fc1_on_linux(app: dict[str, Any], site: dict[str, Any]) -> None:
    (plan,) = resources_of_type(app, "Microsoft.Web/serverfarms").values()
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["properties"]["reserved"] is True  # Linux
    assert site["kind"] == "functionapp,linux"
    assert site["properties"]["serverFarmId"] == {
        "operator": {"type": "property_accessor", "operands": {"operand_1": "plan", "operand_2": "id"}}
    }
    assert site["properties"]["httpsOnly"] is True


def test_python_runtime_is_set_in_function_app_config_not_app_settings(
    app: dict[str, Any], main: dict[str, Any], site: dict[str, Any]
) -> None:
    assert site["properties"]["functionAppConfig"]["runtime"] == {"name": "python", "version": "pythonVersion"}
    version = _param(main, "pythonVersion")
    assert version["default"] == "3.11"
    assert set(_decorator(version, "allowed")) <= {"3.10", "3.11", "3.12", "3.13"}
    rejected = FLEX_REJECTED_SETTINGS & set(app_settings(app))
    assert not rejected, f"Flex Consumption rejects these app settings: {sorted(rejected)}"
    assert "linuxFxVersion" not in site["properties"]["siteConfig"]


def test_instance_memory_and_maximum_instances_are_parameters(main: dict[str, Any], site: dict[str, Any]) -> None:
    scale = site["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    memory = _param(main, "instanceMemoryMB")
    assert memory["type"] == "int" and set(_decorator(memory, "allowed")) == {512, 2048, 4096}
    count = _param(main, "maximumInstanceCount")
    assert (_decorator(count, "min_value"), _decorator(count, "max_value")) == (40, 1000)
    assert "{name: durable, instanceCount: durableAlwaysReadyInstances}" in render(scale["alwaysReady"])


def test_package_deploys_from_a_private_container_in_the_storage_account_with_the_identity(
    app: dict[str, Any], site: dict[str, Any]
) -> None:
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert render(storage["value"]) == "${storage.properties.primaryEndpoints.blob}${deploymentContainerName}"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert render(storage["authentication"]["userAssignedIdentityResourceId"]) == "identity.id"
    (container,) = resources_of_type(
        app, "Microsoft.Storage/storageAccounts/blobServices/containers"
    ).values()
    assert body(container)["name"] == "deploymentContainerName"
    assert variable(app, "deploymentContainerName") == "app-package"
    assert body(container)["properties"]["publicAccess"] == "None"


def test_app_runs_as_a_user_assigned_identity(app: dict[str, Any], site: dict[str, Any]) -> None:
    assert resources_of_type(app, "Microsoft.ManagedIdentity/userAssignedIdentities")
    assert site["identity"]["type"] == "UserAssigned"
    assert render(site["identity"]["userAssignedIdentities"]) == "{'${identity.id}': {}}"


def test_storage_disables_shared_keys_public_blobs_and_old_tls(app: dict[str, Any]) -> None:
    (storage,) = resources_of_type(app, "Microsoft.Storage/storageAccounts").values()
    props = body(storage)["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True


def test_host_storage_settings_are_identity_based(app: dict[str, Any]) -> None:
    settings = app_settings(app)
    assert "AzureWebJobsStorage" not in settings
    assert {render(settings[f"AzureWebJobsStorage__{s}ServiceUri"]["value"]) for s in ("blob", "queue", "table")} == {
        f"storage.properties.primaryEndpoints.{s}" for s in ("blob", "queue", "table")
    }
    assert settings["AzureWebJobsStorage__credential"]["value"] == "managedidentity"
    assert render(settings["AzureWebJobsStorage__clientId"]["value"]) == "identity.properties.clientId"


def test_no_setting_variable_or_output_is_a_secret(templates: dict[str, dict[str, Any]]) -> None:
    for name, template in templates.items():
        assert violations(template) == [], name
        for output, item in template.get("outputs", {}).items():
            assert not re.search(r"key|secret|password|connection_?string|sas", output, re.I), f"{name}: output {output}"
            assert not any(d["type"] == "secure" for d in item["decorators"]), f"{name}: output {output}"


def test_a_key_based_setting_is_caught(tmp_path: Path) -> None:
    text = (INFRA / "app.bicep").read_text()
    keyed = text.replace(
        "var storageSettings = [\n",
        "var storageSettings = [\n"
        "  { name: 'AzureWebJobsStorage', value: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};"
        "AccountKey=${storage.listKeys().keys[0].value}' }\n",
        1,
    )
    assert keyed != text
    path = tmp_path / "app.bicep"
    path.write_text(keyed)
    found = violations(parse(path))
    assert any("AzureWebJobsStorage is a key-based connection string" in v for v in found), found
    assert any("AzureWebJobsStorage carries a secret" in v for v in found), found


def test_shared_key_access_turned_back_on_is_caught(tmp_path: Path) -> None:
    text = (INFRA / "app.bicep").read_text().replace("allowSharedKeyAccess: false", "allowSharedKeyAccess: true")
    path = tmp_path / "app.bicep"
    path.write_text(text)
    assert violations(parse(path)) == ["storage account storage allows shared-key access"]


def test_role_assignments_use_the_exact_built_in_role_ids(app: dict[str, Any], scheduler: dict[str, Any]) -> None:
    roles = variable(app, "roles")
    assert {k: v for k, v in roles.items() if not k.startswith("__")} == {
        "storageBlobDataOwner": STORAGE_BLOB_DATA_OWNER,
        "storageQueueDataContributor": STORAGE_QUEUE_DATA_CONTRIBUTOR,
        "storageTableDataContributor": STORAGE_TABLE_DATA_CONTRIBUTOR,
        "monitoringMetricsPublisher": MONITORING_METRICS_PUBLISHER,
    }
    assigned = {}
    for resource in resources_of_type(app, "Microsoft.Authorization/roleAssignments").values():
        config = resource["config"]
        props = body(resource)["properties"]
        if render(props["principalId"]) == "principalId":
            continue  # the deploying user's: test_the_deploying_user_may_use_the_stop_queues_and_nothing_else
        assert render(props["principalId"]) == "identity.properties.principalId"
        assert props["principalType"] == "ServicePrincipal"
        role = render(props["roleDefinitionId"])
        if "loop_type" in config:
            array = config["loop_type"]["detail"]["array_name"]
            ids = [roles[render(item).split(".", 1)[1]] for item in variable(app, array)]
        else:
            ids = [roles[role.split("roles.", 1)[1].rstrip(")")]]
        for role_id in ids:
            assigned[role_id] = body(resource)["scope"]
    assert assigned == {
        STORAGE_BLOB_DATA_OWNER: "storage",
        STORAGE_QUEUE_DATA_CONTRIBUTOR: "storage",
        STORAGE_TABLE_DATA_CONTRIBUTOR: "storage",
        MONITORING_METRICS_PUBLISHER: "appInsights",
    }
    (dts_role,) = resources_of_type(scheduler, "Microsoft.Authorization/roleAssignments").values()
    assert variable(scheduler, "durableTaskDataContributor") == DURABLE_TASK_DATA_CONTRIBUTOR
    assert body(dts_role)["scope"] == "taskHub"
    assert render(body(dts_role)["properties"]["roleDefinitionId"]).endswith("durableTaskDataContributor)")


def test_telemetry_goes_to_application_insights_on_log_analytics_with_entra_ingestion(app: dict[str, Any]) -> None:
    (workspace,) = resources_of_type(app, "Microsoft.OperationalInsights/workspaces")
    (component,) = resources_of_type(app, "Microsoft.Insights/components").values()
    props = body(component)["properties"]
    assert render(props["WorkspaceResourceId"]) == f"{workspace}.id"
    assert props["DisableLocalAuth"] is True
    settings = app_settings(app)
    assert render(settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]["value"]) == "appInsights.properties.ConnectionString"
    assert render(settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]["value"]) == (
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    )


def test_task_hub_is_the_one_host_json_names(app: dict[str, Any], host_json: dict[str, Any]) -> None:
    load = variable(app, "hostJson")["function"]
    assert load["type"] == "load_json_content"
    assert (INFRA / load["parameters"]["file_path"]).resolve() == REPO / "host.json"
    assert render(variable(app, "taskHubName")) == "hostJson.extensions.durableTask.hubName"
    assert host_json["extensions"]["durableTask"]["hubName"] == "WorkflowHub"
    scheduler_module = app["modules"]["scheduler"]["config"]["config"]
    assert scheduler_module["params"]["taskHubName"] == "taskHubName"


def test_workflow_settings_are_parameters_the_app_reads(app: dict[str, Any], main: dict[str, Any]) -> None:
    settings = app_settings(app)
    assert render(settings[TIMEOUT_ENV]["value"]) == "string(workflowTimeoutSeconds)"
    timeout = _param(main, "workflowTimeoutSeconds")
    assert timeout["type"] == "int" and _decorator(timeout, "min_value") == 0
    # The default deploys a value the app accepts at startup (0 = wait forever).
    assert Settings.from_env({TIMEOUT_ENV: str(timeout["default"])}).timeout_seconds is None
    assert "def from_env" in (REPO / "workflow" / "settings.py").read_text()
    assert "Settings.from_env()" in (REPO / "function_app.py").read_text()
    # Hooks for the queue trigger and retention timer (issue #11): settings exist, queue role granted.
    assert render(settings["WORKFLOW_RETENTION_DAYS"]["value"]) == "string(workflowRetentionDays)"
    assert settings["WORKFLOW_RETENTION_SCHEDULE"]["value"] == "workflowRetentionSchedule"
    assert _param(main, "workflowRetentionSchedule")["default"].count(" ") == 5  # six NCRONTAB fields


def test_azure_storage_is_the_default_backend_and_the_scheduler_switch_is_complete(
    app: dict[str, Any], main: dict[str, Any], host_json: dict[str, Any]
) -> None:
    backend = _param(main, "durableBackend")
    assert backend["default"] == "AzureStorage"
    assert set(_decorator(backend, "allowed")) == {"AzureStorage", "DurableTaskScheduler"}
    assert "storageProvider" not in host_json["extensions"]["durableTask"] or (
        "type" not in host_json["extensions"]["durableTask"]["storageProvider"]
    ), "host.json must keep Azure Storage, the default, so the switch lives in app settings only"

    settings = app_settings(app)
    always = {n: s["value"] for n, s in settings.items() if s["when"] is None}
    on_scheduler = {n: s["value"] for n, s in settings.items() if s["when"] == "useScheduler"}
    assert set(on_scheduler) == {
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
    }
    assert render(variable(app, "useScheduler")) == "equals(durableBackend, DurableTaskScheduler)"

    def durable(settings_on: dict[str, Any]) -> dict[str, Any]:
        literal = {n: v for n, v in settings_on.items() if isinstance(v, str)}
        return host_config_with(literal, host_json)["extensions"]["durableTask"]

    default = durable(always)
    assert default.get("storageProvider", {}).get("type") in (None, "AzureStorage")
    switched = durable({**always, **on_scheduler})
    assert switched["storageProvider"]["type"] == "azureManaged"
    assert switched["storageProvider"]["connectionStringName"] in on_scheduler
    assert switched["hubName"] == default["hubName"] == "WorkflowHub"
    connection = on_scheduler["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    assert connection == "Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity;ClientID=${identity.properties.clientId}"


def test_queue_polling_stays_well_under_the_stop_verdict_wait(host_json: dict[str, Any]) -> None:
    from workflow.settings import STOP_CONFIRM_SECONDS

    interval = host_json["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"]
    hours, minutes, seconds = (float(x) for x in interval.split(":"))
    assert hours * 3600 + minutes * 60 + seconds <= 10 < STOP_CONFIRM_SECONDS


def test_scheduler_resources_exist_only_with_the_scheduler_backend(app: dict[str, Any], scheduler: dict[str, Any]) -> None:
    assert app["modules"]["scheduler"]["config"]["condition"] == "useScheduler"
    assert resources_of_type(scheduler, "Microsoft.DurableTask/schedulers")
    (hub,) = resources_of_type(scheduler, "Microsoft.DurableTask/schedulers/taskHubs").values()
    assert body(hub)["name"] == "taskHubName"
    assert "endpoint" in scheduler["outputs"]


def test_parameters_file_covers_every_required_parameter(main: dict[str, Any]) -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    params = main["parameters"]
    assert set(values) <= set(params), f"unknown parameters: {set(values) - set(params)}"
    required = {n for n, p in params.items() if "default" not in p}
    assert required <= set(values), f"required but not set: {required - set(values)}"


# Filled in by azd itself (the signed-in principal), or asked by `azd up`: not user choices.
AZD_SUPPLIED = {"environmentName": "AZURE_ENV_NAME", "location": "AZURE_LOCATION",
                "principalId": "AZURE_PRINCIPAL_ID", "principalType": "AZURE_PRINCIPAL_TYPE"}


def test_every_choice_is_an_environment_variable_whose_default_is_the_bicep_default(main: dict[str, Any]) -> None:
    """Each parameter reads `${VAR=default}`, so `azd env set VAR` (locally) and a repository
    variable (CI) both reach it, and an unset one deploys exactly the template's default."""
    values = parameter_file()
    params = main["parameters"]
    assert set(values) == set(params), f"not in main.parameters.json: {set(params) - set(values)}"
    for name, param in params.items():
        var, default = env_mapping(values[name])
        if name in AZD_SUPPLIED:
            assert (var, default) == (AZD_SUPPLIED[name], None), name
            continue
        assert default is not None, f"{name}: ${{{var}}} has no default"
        assert default == str(param["default"]), f"{name}: file default {default!r}, Bicep default {param['default']!r}"
        # What azd deploys when the variable is unset or empty (a GitHub variable never created).
        for unset in ({}, {var: ""}):
            assert resolve_parameter(values[name], param, unset) == param["default"], name


def test_python_version_survives_the_python_images_own_PYTHON_VERSION(main: dict[str, Any]) -> None:
    """azd falls back to the process environment, and python:3.x images and devcontainers
    export PYTHON_VERSION=3.12.7: the template must not read that name."""
    values = parameter_file()
    param = _param(main, "pythonVersion")
    image_env = {"PYTHON_VERSION": "3.12.7", "PYTHON_SHA256": "0" * 64, "PYTHONUNBUFFERED": "1"}
    assert resolve_parameter(values["pythonVersion"], param, image_env) == param["default"]
    assert resolve_parameter(values["pythonVersion"], param, {env_mapping(values["pythonVersion"])[0]: "3.12"}) == "3.12"
    for path in (INFRA / "main.parameters.json", REPO / "azure.yaml", REPO / ".github" / "workflows" / "ci.yml"):
        assert "PYTHON_VERSION}" not in path.read_text() and "${PYTHON_VERSION" not in path.read_text(), path


def test_location_is_limited_to_regions_that_offer_flex_consumption(main: dict[str, Any]) -> None:
    location = _param(main, "location")
    allowed = _decorator(location, "allowed")
    assert allowed, "location accepts any region; one without Flex Consumption fails half-way"
    assert all(re.fullmatch(r"[a-z0-9]+", r) for r in allowed), allowed
    assert {"eastus", "westeurope", "australiaeast", "swedencentral"} <= set(allowed)
    # Regions known not to offer Flex Consumption (nor Durable Task Scheduler).
    assert not {"westindia", "francesouth", "germanynorth", "brazilsoutheast"} & set(allowed)
    # The list says where it comes from and when it was read, in the comment just above it.
    lines = (INFRA / "main.bicep").read_text().splitlines()
    start = location["__start_line__"] - 1
    comment = []
    for line in reversed(lines[:start]):
        if not line.startswith("//"):
            break
        comment.insert(0, line)
    text = " ".join(comment)
    assert "functions-quickstart-python-http-azd" in text and re.search(r"\d{4}-\d{2}-\d{2}", text), text


def test_conditional_module_outputs_are_read_with_safe_access(templates: dict[str, dict[str, Any]]) -> None:
    """BCP318: `mod.outputs.x` on a module deployed under `if (...)` may be null; Bicep wants
    `mod.?outputs.x` (pycep reads `.?` as `.`, so the text is checked)."""
    checked = 0
    for name, template in templates.items():
        text = (INFRA / name).read_text()
        for module, declared in template.get("modules", {}).items():
            if declared["config"].get("condition") is None:
                continue
            checked += 1
            unsafe = re.findall(rf"\b{module}\.outputs\b", text)
            assert not unsafe, f"{name}: {module}.outputs on a conditional module (use {module}.?outputs)"
    assert checked >= 1


def test_both_stop_queues_are_created(app: dict[str, Any], site: dict[str, Any]) -> None:
    from workflow.queue_stop import POISON_QUEUE_NAME, QUEUE_NAME

    (queues,) = resources_of_type(app, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    loop = queues["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "stopQueueNames" and body(queues)["name"] == loop["item_name"]
    assert variable(app, "stopQueueNames") == [QUEUE_NAME, POISON_QUEUE_NAME]
    (service,) = resources_of_type(app, "Microsoft.Storage/storageAccounts/queueServices").values()
    assert body(service)["parent"] == "storage" and body(service)["name"] == "default"
    assert body(queues)["parent"] == next(iter(resources_of_type(app, "Microsoft.Storage/storageAccounts/queueServices")))
    assert "stopQueues" in site["dependsOn"]


def test_the_deploying_user_may_use_the_stop_queues_and_nothing_else(app: dict[str, Any], main: dict[str, Any]) -> None:
    values = parameter_file()
    assert env_mapping(values["principalId"]) == ("AZURE_PRINCIPAL_ID", None)
    assert _param(main, "principalId")["default"] == ""
    assert render(main["modules"]["app"]["config"]["params"]["principalId"]) == "principalId"
    users = [
        r for r in resources_of_type(app, "Microsoft.Authorization/roleAssignments").values()
        if render(body(r)["properties"]["principalId"]) == "principalId"
    ]
    (user,) = users
    props = body(user)["properties"]
    assert render(props["roleDefinitionId"]).endswith("roles.storageQueueDataContributor)")
    assert props["principalType"] == "principalType"
    assert render(body(user)["scope"]) == "index_accessor(stopQueues, i)"
    # One per stop queue, none when azd supplies no principal.
    count = render(user["config"]["loop_type"]["detail"]["array_name"])
    assert count == "range(0, empty(principalId) ? 0 : length(stopQueueNames))", count


def test_outputs_name_the_storage_account_for_the_queue_commands(app: dict[str, Any], main: dict[str, Any]) -> None:
    assert render(app["outputs"]["storageAccountName"]["value"]) == "storage.name"
    assert render(main["outputs"]["AZURE_STORAGE_ACCOUNT_NAME"]["value"]) == "app.outputs.storageAccountName"


def test_azure_yaml_deploys_the_repository_root_as_a_python_function_app(site: dict[str, Any]) -> None:
    import yaml

    azure = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert azure["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    (name, service), = azure["services"].items()
    assert {k: service[k] for k in ("project", "language", "host")} == {"project": ".", "language": "python", "host": "function"}
    assert service["dist"] == ".azd-package"  # staged by the prepackage hook: tests/infra/test_package.py
    assert render(site["tags"]) == f"union(tags, {{'azd-service-name': {name}}})"
