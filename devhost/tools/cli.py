"""``python -m devhost durable <verb>``: the ``func durable`` commands, against devhost.

Verbs and flags follow Core Tools' ``func durable`` (get-instances, get-runtime-status,
get-history, start-new, raise-event, terminate, suspend, resume, rewind, purge-history,
delete-task-hub). Each verb is one request to the Durable management API, sent either

- over HTTP to a running devhost (``--url``, default ``http://127.0.0.1:7071``), to the same
  webhook URLs ``create_check_status_response`` hands out; or
- in-process to a stopped devhost's database (``--db PATH``, with the app from ``--app``): the
  same :class:`devhost.tools.management.ManagementApi` handles it, so the answers are identical. The
  database lock is taken first, so a database a devhost is using is refused. Changes are
  committed at once and run when devhost next starts (it resumes every queued message).

Exit codes (scripts may rely on them):
    0  done;
    1  devhost refused the request (unknown instance, already finished, bad request...);
    2  bad command line (unknown verb or flag, a value that is not JSON);
    3  devhost cannot be reached: nothing listens at ``--url``, or the ``--db`` file is
       missing, empty, not a devhost database (another program's SQLite file, any other
       file: recognised by devhost's ``application_id`` or, for an older store, its exact
       schema, and never changed), read-only or in a read-only directory, or in use by a
       running devhost, or the app cannot be loaded;
    4  the verb is not supported by devhost (rewind).

Output: human-readable tables (every value printed with control characters escaped, so an
instance's data cannot drive the terminal), or with ``--json`` one JSON document on stdout.
Errors go to stderr.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from devhost.tools.management import CONTINUATION_HEADER, WEBHOOK_PATH

DEFAULT_URL = "http://127.0.0.1:7071"
EPOCH = "1970-01-01T00:00:00Z"
OK, REFUSED, USAGE, UNREACHABLE, UNSUPPORTED = 0, 1, 2, 3, 4


class CliError(Exception):
    """Ends the command with ``code`` after printing ``message`` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    value: Any


# ---- transports --------------------------------------------------------------------------------

class HttpTransport:
    """Sends management requests to a running devhost's webhook URLs."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.base, self.timeout = url.rstrip("/"), timeout

    def close(self) -> None:
        pass

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                body: bytes | None = None) -> Answer:
        """``path``: relative to the webhook base, its segments already percent-encoded."""
        url = self.base + WEBHOOK_PATH + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Answer(resp.status, dict(resp.headers), _parse(resp.read()))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, dict(exc.headers), _parse(exc.read()))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(UNREACHABLE, f"devhost is not running at {self.base} ({reason}); "
                                        f"start it with `make run` or `python -m devhost`, "
                                        f"or pass --url, or --db for a stopped one's "
                                        f"database") from None


class DbTransport:
    """Handles management requests in-process on a stopped devhost's database."""

    def __init__(self, db: str, app_dir: str) -> None:
        # Imported here: the HTTP transport must not pay for loading the SDK.
        from devhost.app.appfiles import AppLoadError, load_settings
        from devhost.core.engine import Engine
        from devhost.app.loader import load_app
        from devhost.tools.management import ManagementApi
        from devhost.core.store import NotADevhostStore, Store, StoreLocked, check_database

        try:
            # Before anything else: a file that is not a devhost store is never changed.
            check_database(db, create=False)
        except NotADevhostStore as exc:
            raise CliError(UNREACHABLE, str(exc)) from None
        try:
            load_settings(app_dir)
            app = load_app(app_dir)
        except AppLoadError as exc:
            raise CliError(UNREACHABLE, f"--db needs the app that owns the database "
                                        f"(--app, default '.'): {exc}") from None
        try:
            self.store = Store(db, lock_wait=0.0, create=False)
        except StoreLocked as exc:
            raise CliError(UNREACHABLE, f"{exc}; use --url to talk to it instead") from None
        except NotADevhostStore as exc:
            raise CliError(UNREACHABLE, str(exc)) from None
        except (OSError, sqlite3.Error) as exc:
            raise CliError(UNREACHABLE, f"cannot use the devhost database {db}: {exc}") from None

        class QueueingEngine(Engine):
            """Queues work instead of running it: the next devhost start resumes every
            instance with queued messages (:meth:`Engine.recover`)."""

            def wake(self, instance_id: str, at: float | None = None) -> None:
                pass

        self.api = ManagementApi(self.store, QueueingEngine(self.store, app), app)

    def close(self) -> None:
        self.store.close()

    def request(self, method: str, path: str, query: Mapping[str, str] | None = None,
                body: bytes | None = None) -> Answer:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        reply = self.api.handle(method, path, dict(query or {}), headers, body or b"",
                                DEFAULT_URL)
        return Answer(reply.status, dict(reply.headers), reply.value)


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


# ---- output ------------------------------------------------------------------------------------

def printable(value: Any) -> str:
    """One table cell: strings as they are, other values as compact JSON; control characters
    escaped (a hostile instance id or output cannot move the cursor or clear the screen)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], width: int = 60) -> str:
    cells = [[printable(c) for c in row] for row in rows]
    cells = [[c if len(c) <= width else c[:width - 1] + "…" for c in row] for row in cells]
    sizes = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(sizes[i]) for i, h in enumerate(headers)).rstrip(),
             "  ".join("-" * s for s in sizes)]
    lines += ["  ".join(c.ljust(sizes[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)


def _fields(value: Mapping[str, Any], keys: Sequence[str]) -> str:
    width = max(len(k) for k in keys)
    return "\n".join(f"{k.ljust(width)}  {printable(value.get(k))}" for k in keys if k in value)


def _refused(answer: Answer, what: str) -> CliError:
    value = answer.value
    message = None
    if isinstance(value, dict):
        message = value.get("ExceptionMessage") or value.get("error") or value.get("Message")
    return CliError(REFUSED, f"{what}: devhost answered {answer.status}"
                             + (f": {message}" if message else ""))


# ---- verbs ---------------------------------------------------------------------------------------

Transport = HttpTransport | DbTransport


def _seg(text: str) -> str:
    """One path segment, percent-encoded (ids may hold spaces, quotes, '%')."""
    return urllib.parse.quote(text, safe="")


def _json_arg(text: str | None, flag: str) -> Any:
    """A JSON flag value, or ``@path`` of a JSON file (as ``func durable`` accepts)."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CliError(USAGE, f"{flag}: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(USAGE, f"{flag} is not valid JSON ({exc}); a string needs quotes, "
                              f"e.g. {flag} '\"text\"'") from None


def _statuses(values: Sequence[str] | None) -> str | None:
    if not values:
        return None
    return ",".join(s.strip() for v in values for s in v.split(",") if s.strip())


def get_instances(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    query = {"top": str(a.top), "showInput": str(a.show_input).lower()}
    for key, value in (("createdTimeFrom", a.created_after), ("createdTimeTo", a.created_before),
                       ("runtimeStatus", _statuses(a.runtime_status)),
                       ("instanceIdPrefix", a.instance_id_prefix),
                       ("continuationToken", a.continuation_token)):
        if value:
            query[key] = value
    answer = t.request("GET", "/instances", query)
    if answer.status != 200:
        raise _refused(answer, "get-instances")
    token = next((v for k, v in answer.headers.items()
                  if k.lower() == CONTINUATION_HEADER), None)
    rows = [[i["instanceId"], i["name"], i["runtimeStatus"], i["createdTime"],
             i["lastUpdatedTime"]] + ([i.get("input")] if a.show_input else [])
            for i in answer.value]
    headers = ["InstanceId", "Name", "RuntimeStatus", "CreatedTime", "LastUpdatedTime"] + \
        (["Input"] if a.show_input else [])
    text = table(rows, headers) + f"\n{len(rows)} instance(s)"
    if token:
        text += f"; more with --continuation-token {token}"
    return {"instances": answer.value, "continuationToken": token}, text


def get_runtime_status(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    answer = t.request("GET", f"/instances/{_seg(a.id)}", {"showInput": str(a.show_input).lower()})
    if answer.status not in (200, 202):
        raise _refused(answer, f"get-runtime-status {a.id}")
    value = dict(answer.value)
    if not a.show_output:
        value.pop("output", None)
    keys = ["instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime",
            "customStatus"] + (["input"] if a.show_input else []) + \
        (["output"] if a.show_output else [])
    return value, _fields(value, keys)


def get_history(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    answer = t.request("GET", f"/instances/{_seg(a.id)}",
                       {"showHistory": "true", "showHistoryOutput": "true", "showInput": "true"})
    if answer.status not in (200, 202):
        raise _refused(answer, f"get-history {a.id}")
    events = answer.value.get("historyEvents", [])
    rows = []
    for ev in events:
        task = ev.get("TaskScheduledId", ev.get("TimerId", ev.get("EventId")))
        detail = ev.get("Result", ev.get("Reason", ev.get("Input", ev.get("FireAt"))))
        rows.append([ev.get("Timestamp"), ev.get("EventType"), ev.get("Name") or "",
                     "" if task in (None, -1) else task, "" if detail is None else detail])
    return events, table(rows, ["Timestamp", "EventType", "Name", "TaskId", "Data"])


def start_new(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    value = _json_arg(a.input, "--input")
    path = f"/orchestrators/{_seg(a.function_name)}" + (f"/{_seg(a.id)}" if a.id else "")
    # Encoded as the Python client's start_new encodes it (the input's JSON text as a JSON
    # string): what a Python orchestrator's get_input() decodes.
    body = None if a.input is None else json.dumps(json.dumps(value)).encode()
    answer = t.request("POST", path, None, body)
    if answer.status != 202:
        raise _refused(answer, f"start-new {a.function_name}")
    return answer.value, (f"Started '{printable(a.function_name)}' as instance "
                          f"{printable(answer.value['id'])}\n"
                          f"status: {printable(answer.value['statusQueryGetUri'])}")


def raise_event(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    value = _json_arg(a.event_data, "--event-data")
    answer = t.request("POST", f"/instances/{_seg(a.id)}/raiseEvent/{_seg(a.event_name)}", None,
                       json.dumps(value).encode())
    if answer.status != 202:
        raise _refused(answer, f"raise-event {a.event_name} to {a.id}")
    return ({"instanceId": a.id, "eventName": a.event_name, "accepted": True},
            f"Raised event '{printable(a.event_name)}' to instance {printable(a.id)}")


def _control(operation: str) -> Callable[[Transport, argparse.Namespace], tuple[Any, str]]:
    def run(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
        query = {"reason": a.reason} if a.reason else {}
        answer = t.request("POST", f"/instances/{_seg(a.id)}/{operation}", query)
        if answer.status != 202:
            raise _refused(answer, f"{operation} {a.id}")
        return ({"instanceId": a.id, "operation": operation, "accepted": True},
                f"{operation.capitalize()} of instance {printable(a.id)} accepted")
    return run


def rewind(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    raise CliError(UNSUPPORTED, "rewind is not supported by devhost (it is a preview feature of "
                                "the Azure Storage backend); restart the instance instead: "
                                f"POST {WEBHOOK_PATH}/instances/<id>/restart")


def _purge(t: Transport, query: dict[str, str]) -> int:
    answer = t.request("DELETE", "/instances", query)
    if answer.status == 404:  # nothing matched: the host's answer for an empty purge
        return 0
    if answer.status != 200:
        raise _refused(answer, "purge")
    return int(answer.value["instancesDeleted"])


def purge_history(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    query = {"createdTimeFrom": a.created_after or EPOCH}
    if a.created_before:
        query["createdTimeTo"] = a.created_before
    statuses = _statuses(a.runtime_status)
    if statuses:
        query["runtimeStatus"] = statuses
    deleted = _purge(t, query)
    return {"instancesDeleted": deleted}, f"Purged {deleted} instance(s)"


def delete_task_hub(t: Transport, a: argparse.Namespace) -> tuple[Any, str]:
    deleted = _purge(t, {"createdTimeFrom": EPOCH})
    return ({"instancesDeleted": deleted},
            f"Deleted the task hub's {deleted} instance(s) with their history, messages and "
            f"pending activities")


VERBS: dict[str, Callable[[Transport, argparse.Namespace], tuple[Any, str]]] = {
    "get-instances": get_instances, "get-runtime-status": get_runtime_status,
    "get-history": get_history, "start-new": start_new, "raise-event": raise_event,
    "terminate": _control("terminate"), "suspend": _control("suspend"),
    "resume": _control("resume"), "rewind": rewind, "purge-history": purge_history,
    "delete-task-hub": delete_task_hub,
}


# ---- command line --------------------------------------------------------------------------------

def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit code USAGE, as documented
        self.print_usage(sys.stderr)
        raise CliError(USAGE, f"{self.prog}: {message}")


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    target = common.add_argument_group("which devhost")
    target.add_argument("--url", default=None,
                        help=f"a running devhost (default {DEFAULT_URL})")
    target.add_argument("--db", default=None,
                        help="a stopped devhost's database file instead of --url")
    target.add_argument("--app", default=".",
                        help="with --db: the app directory that owns it (default '.')")
    common.add_argument("--json", action="store_true", help="print one JSON document")
    # Accepted for compatibility with `func durable` scripts; devhost has one task hub.
    common.add_argument("--task-hub-name", help=argparse.SUPPRESS)
    common.add_argument("--connection-string-setting", help=argparse.SUPPRESS)

    p = _Parser(prog="python -m devhost durable",
                description="func durable commands against devhost (exit codes: 0 done, "
                            "1 refused, 2 usage, 3 devhost unreachable, 4 unsupported)")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    def verb(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=text, description=text)

    def flag(cmd: argparse.ArgumentParser, name: str, text: str) -> None:
        cmd.add_argument(name, type=_bool, nargs="?", const=True, default=False, help=text)

    g = verb("get-instances", "list instances, oldest first, a page at a time")
    g.add_argument("--created-after", help="ISO 8601 time")
    g.add_argument("--created-before", help="ISO 8601 time")
    g.add_argument("--runtime-status", nargs="+", help="one or more statuses")
    g.add_argument("--instance-id-prefix")
    g.add_argument("--top", type=int, default=10, help="page size (default 10)")
    g.add_argument("--continuation-token")
    flag(g, "--show-input", "include inputs")
    g = verb("get-runtime-status", "one instance's status")
    g.add_argument("--id", required=True)
    flag(g, "--show-input", "include the input")
    flag(g, "--show-output", "include the output")
    g = verb("get-history", "one instance's history events")
    g.add_argument("--id", required=True)
    g = verb("start-new", "start an orchestration")
    g.add_argument("--function-name", required=True)
    g.add_argument("--input", help="JSON, or @file.json")
    g.add_argument("--id", help="instance id (default: a new one)")
    g = verb("raise-event", "raise an event to an instance")
    g.add_argument("--id", required=True)
    g.add_argument("--event-name", required=True)
    g.add_argument("--event-data", default="null", help="JSON, or @file.json (default null)")
    for name in ("terminate", "suspend", "resume", "rewind"):
        g = verb(name, f"{name} an instance")
        g.add_argument("--id", required=True)
        g.add_argument("--reason")
    g = verb("purge-history", "delete finished instances' history (by creation time, status)")
    g.add_argument("--created-after", help="ISO 8601 time (default: the beginning)")
    g.add_argument("--created-before", help="ISO 8601 time")
    g.add_argument("--runtime-status", nargs="+")
    verb("delete-task-hub", "delete every instance of the task hub")
    return p


def main(argv: Sequence[str] | None = None, out: Any = None, err: Any = None) -> int:
    """Run one verb; returns the exit code (see the module docstring)."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = parser().parse_args(argv)
        if args.verb == "rewind":
            rewind(None, args)  # type: ignore[arg-type]
        if args.db and args.url:
            raise CliError(USAGE, "pass --url or --db, not both")
        transport: Transport = DbTransport(args.db, args.app) if args.db \
            else HttpTransport(args.url or DEFAULT_URL)
        try:
            value, text = VERBS[args.verb](transport, args)
        finally:
            transport.close()
    except CliError as exc:
        print(f"error: {printable(str(exc))}", file=err)
        return exc.code
    print(json.dumps(value, indent=2) if args.json else text, file=out)
    return OK

