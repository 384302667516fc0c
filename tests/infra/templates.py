"""Reading the Bicep templates in ``infra/`` offline, and the rules they must keep.

The Bicep CLI cannot run here (it downloads a binary), so templates are parsed with
``pycep-parser``, which turns a ``.bicep`` file into JSON. This module adds what the tests need on
top: a syntax error that names the file and line, a way to read an expression back as text, the
app settings a template gives the function app, and the identity-only rules as a function that
lists every violation (so a test can show a key-based template is caught, not only that ours
passes).

Guarantees: ``parse`` raises ``BicepSyntaxError`` (with ``path`` and ``line``) for any file the
parser rejects; ``violations`` returns ``[]`` only if no app setting, variable or output of the
template carries a key, SAS or ``list*()`` result and storage has shared keys disabled.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark.exceptions import UnexpectedInput
from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

# Built-in Azure role definitions: the same ids in every tenant.
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"

# Anything that puts a credential into a setting or an output: a storage key or SAS in a
# connection string, or a list*() call (listKeys, listAccountSas, listSecrets, ...).
_SECRET_PATTERNS = re.compile(
    r"AccountKey=|SharedAccessSignature|SharedAccessKey|sig=|\blist[A-Z]\w*\(|\blist_\w+|"
    r"\"type\": \"list\w*\"",
)
# Setting names that only ever hold a key-based connection string.
_KEY_BASED_SETTINGS = {"AzureWebJobsStorage", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING"}


@dataclass(frozen=True)
class BicepSyntaxError(Exception):
    """A template the parser rejects, with where."""

    path: Path
    line: int
    column: int
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.detail}"


def parse(path: Path) -> dict[str, Any]:
    """Parse one ``.bicep`` file into pycep's JSON form.

    Raises: ``BicepSyntaxError`` naming the file, line and column of the first error.
    """
    try:
        return BicepParser(add_line_numbers=True).parse(text=path.read_text())
    except UnexpectedInput as exc:
        first = str(exc).strip().splitlines()[0]
        raise BicepSyntaxError(path, exc.line, exc.column, first) from exc


def parse_all(infra: Path = INFRA) -> dict[str, dict[str, Any]]:
    """Every ``.bicep`` under ``infra``, by path relative to it."""
    return {str(p.relative_to(infra)): parse(p) for p in sorted(infra.rglob("*.bicep"))}


def render(expr: Any) -> str:
    """An expression as compact text: ``storage.properties.primaryEndpoints.blob``,
    ``guid(storage.id, identity.id, roleId)``, ``c ? a : b``. Literals render as themselves
    (pycep does not tell a string literal from an identifier, so neither does this)."""
    if isinstance(expr, dict):
        if "operator" in expr:
            op = expr["operator"]
            args = op["operands"]
            if op["type"] == "property_accessor":
                return f"{render(args['operand_1'])}.{render(args['operand_2'])}"
            if op["type"] == "conditional":
                return f"{render(args['condition'])} ? {render(args['true_value'])} : {render(args['false_value'])}"
            return f"{op['type']}({', '.join(render(v) for v in args.values())})"
        if "function" in expr:
            fn = expr["function"]
            params = [render(v) for v in (fn.get("parameters") or {}).values() if v is not None]
            return f"{fn['type']}({', '.join(params)})"
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in expr.items() if not k.startswith("__")) + "}"
    if isinstance(expr, list):
        return "[" + ", ".join(render(v) for v in expr) + "]"
    return json.dumps(expr) if isinstance(expr, bool) or expr is None else str(expr)


def resources_of_type(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    """Resources of one ARM type, by symbolic name."""
    return {name: r for name, r in template.get("resources", {}).items() if r["type"] == rtype}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's own properties, under any loop or condition wrapper."""
    config = resource["config"]
    while "loop_type" in config or ("condition" in config and "config" in config):
        config = config["config"]
    return config


def variable(template: dict[str, Any], name: str) -> Any:
    return template["variables"][name]["value"]


def app_settings(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The function app's settings: each name -> ``{"value": expr, "when": condition or None}``.

    Reads ``siteConfig.appSettings`` of every ``Microsoft.Web/sites`` resource, following
    ``concat(...)`` of variables and ``cond ? [...] : []`` choices.
    """
    settings: dict[str, dict[str, Any]] = {}

    def collect(expr: Any, when: str | None) -> None:
        if isinstance(expr, str) and expr in template.get("variables", {}):
            collect(variable(template, expr), when)
        elif isinstance(expr, list):
            for item in expr:
                settings[item["name"]] = {"value": item["value"], "when": when}
        elif isinstance(expr, dict) and expr.get("function", {}).get("type") == "concat":
            for arg in expr["function"]["parameters"].values():
                if arg is not None:
                    collect(arg, when)
        elif isinstance(expr, dict) and expr.get("operator", {}).get("type") == "conditional":
            args = expr["operator"]["operands"]
            collect(args["true_value"], render(args["condition"]))
            collect(args["false_value"], f"!{render(args['condition'])}")
        else:
            raise AssertionError(f"cannot read app settings from {render(expr)}")

    for site in resources_of_type(template, "Microsoft.Web/sites").values():
        collect(body(site)["properties"]["siteConfig"].get("appSettings", []), None)
    return settings


def violations(template: dict[str, Any]) -> list[str]:
    """Every way this template breaks the identity-only rule; ``[]`` if none.

    Checked: no app setting named for a key-based connection string, no setting value, variable
    or output that carries a key, SAS or ``list*()`` result, every storage account has shared-key
    access and public blob access disabled and TLS 1.2 or later.
    """
    problems = []
    for name, setting in app_settings(template).items():
        if name in _KEY_BASED_SETTINGS:
            problems.append(f"app setting {name} is a key-based connection string; use {name}__* identity settings")
        if _SECRET_PATTERNS.search(json.dumps(setting["value"])) or _SECRET_PATTERNS.search(render(setting["value"])):
            problems.append(f"app setting {name} carries a secret: {render(setting['value'])}")
    for kind in ("variables", "outputs"):
        for name, item in template.get(kind, {}).items():
            if _SECRET_PATTERNS.search(json.dumps(item["value"])):
                problems.append(f"{kind[:-1]} {name} carries a secret: {render(item['value'])}")
    for name, account in resources_of_type(template, "Microsoft.Storage/storageAccounts").items():
        props = body(account).get("properties", {})
        if props.get("allowSharedKeyAccess") is not False:
            problems.append(f"storage account {name} allows shared-key access")
        if props.get("allowBlobPublicAccess") is not False:
            problems.append(f"storage account {name} allows public blob access")
        if props.get("minimumTlsVersion") not in ("TLS1_2", "TLS1_3"):
            problems.append(f"storage account {name} accepts TLS below 1.2")
    return problems


def host_config_with(settings: dict[str, str], host_json: dict[str, Any]) -> dict[str, Any]:
    """host.json as the Functions host sees it with these app settings: a setting named
    ``AzureFunctionsJobHost__a__b`` overrides ``a.b`` (the host's documented override; keys
    match case-insensitively)."""
    config = json.loads(json.dumps(host_json))
    prefix = "AzureFunctionsJobHost__"
    for name, value in settings.items():
        if not name.startswith(prefix):
            continue
        node = config
        *path, leaf = name[len(prefix):].split("__")
        for key in path:
            match = next((k for k in node if k.lower() == key.lower()), key)
            node = node.setdefault(match, {})
        match = next((k for k in node if k.lower() == leaf.lower()), leaf)
        node[match] = value
    return config


# One `${NAME}` or `${NAME=default}` reference, the whole value (azd substitutes only parameter values).
_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<default>[^}]*))?\}")


def parameter_file() -> dict[str, dict[str, Any]]:
    """``infra/main.parameters.json``'s entries, by parameter name."""
    return json.loads((INFRA / "main.parameters.json").read_text())["parameters"]


def env_mapping(entry: dict[str, Any]) -> tuple[str, str | None]:
    """The environment variable a parameter entry reads and its default (None without one).

    Raises ``AssertionError`` if the value is not exactly one ``${...}`` reference.
    """
    value = entry["value"]
    match = _ENV_REFERENCE.fullmatch(value) if isinstance(value, str) else None
    assert match, f"not an environment variable reference: {value!r}"
    return match["name"], match["default"]


def resolve_parameter(entry: dict[str, Any], param: dict[str, Any], env: dict[str, str]) -> Any:
    """The value azd deploys for one parameter, given the environment it sees.

    Copies azure-dev: ``pkg/infra/provisioning/bicep/bicep_provider.go`` ``evalParamEnvSubst``
    looks a name up in the azd environment, then the process environment
    (``environment.LookupEnv``), and drone/envsubst's ``${NAME=default}`` uses the default when the
    value is unset *or empty* (``funcs.go`` ``toDefault``); a string left empty by an unset
    variable is omitted, so the Bicep default applies (``loadParameters``); a numeric string for
    an ``int`` parameter is converted (``armParameterFileValue``).
    """
    name, default = env_mapping(entry)
    value = env.get(name, "")
    if value == "":
        value = default if default is not None else ""
    if value == "" and name not in env:
        return param.get("default")
    if param["type"] == "int":
        return int(value) if re.fullmatch(r"[+-]?\d+", value) else param.get("default")
    return value
