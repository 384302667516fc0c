"""Update the template's snapshots from the app as it is now: ``python -m tests.template.snapshot``.

Writes ``tests/openapi.snapshot.json`` (the OpenAPI document ``workflow.openapi`` serves) and
``tests/template/functions.snapshot.json`` (every function the worker indexes, with its trigger
type), then prints what changed. Run it after a deliberate change to the HTTP surface or the
function list (e.g. a new activity), and review the diff before committing it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
OPENAPI_SNAPSHOT = REPO / "tests" / "openapi.snapshot.json"
FUNCTIONS_SNAPSHOT = REPO / "tests" / "template" / "functions.snapshot.json"
COMMAND = "python -m tests.template.snapshot"


def openapi_document() -> dict[str, Any]:
    from workflow import openapi
    return openapi.document()


def function_list() -> dict[str, str]:
    """Function name -> trigger binding type, as the worker indexes ``function_app``."""
    from tests.app_index import functions
    return {name: function.get_trigger().get_binding_name()
            for name, function in sorted(functions().items())}


def text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def main() -> int:
    sys.path.insert(0, str(REPO))
    for path, value in ((OPENAPI_SNAPSHOT, openapi_document()),
                        (FUNCTIONS_SNAPSHOT, function_list())):
        new = text(value)
        old = path.read_text() if path.exists() else ""
        path.write_text(new)
        print(f"{'updated' if new != old else 'unchanged'}: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
