"""devhost.host.fastpath: the shortcuts keep the SDK's observable behaviour.

Each check runs in a fresh interpreter: installing patches the SDK for the whole process.
"""
from __future__ import annotations

import json
import subprocess
import sys

from devhost.host.process import REPO

_PROBE = r"""
import json, os
from devhost.host import fastpath
import azure.durable_functions as df
from azure.functions import _durable_functions as codec

binding = json.dumps({
    "taskHubName": "Hub", "creationUrls": {}, "rpcBaseUrl": "http://127.0.0.1:1/durabletask/",
    "managementUrls": {"id": "INSTANCEID",
                       "statusQueryGetUri": "http://h/instances/INSTANCEID?x=1"}})
installed = fastpath.install(lambda *a: None, "http://127.0.0.1:1/durabletask/")
first = df.DurableOrchestrationClient(binding)
links_a = first.get_client_response_links(None, "a")
second = df.DurableOrchestrationClient(binding)
links_b = second.get_client_response_links(None, "b")
print(json.dumps({
    "installed": installed,
    "shared": first._orchestration_bindings is second._orchestration_bindings,
    "links": [links_a, links_b],
    "template": second._orchestration_bindings.management_urls,
    "strict": codec._is_strict_mode(),
    "env": os.environ.get(codec._STRICT_ENV_VAR),
    "roundtrip": codec.df_loads(codec.df_dumps({"n": 1, "s": "x"})),
}))
"""


def probe(env: dict[str, str] | None = None) -> dict:
    run = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **(env or {})})
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_cached_bindings_give_each_client_its_own_links_and_keep_the_template() -> None:
    result = probe()
    assert "cached-bindings" in result["installed"]
    assert result["shared"] is True
    assert [links["id"] for links in result["links"]] == ["a", "b"]
    assert result["links"][1]["statusQueryGetUri"] == "http://h/instances/b?x=1"
    assert result["template"]["id"] == "INSTANCEID"


def test_strict_typing_env_reads_as_unset_and_leaves_a_chosen_value_alone() -> None:
    result = probe()
    assert "strict-typing-env" in result["installed"]
    assert (result["env"], result["strict"]) == ("", False)
    assert result["roundtrip"] == {"n": 1, "s": "x"}
    chosen = probe({"AZURE_FUNCTIONS_DURABLE_STRICT_TYPING": "1"})
    assert "strict-typing-env" not in chosen["installed"]
    assert (chosen["env"], chosen["strict"]) == ("1", True)


def test_fast_path_off_installs_nothing_and_sets_nothing() -> None:
    result = probe({"DEVHOST_FASTPATH": "0"})
    assert result["installed"] == []
    assert result["shared"] is False
    assert result["env"] is None
