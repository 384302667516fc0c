"""``python -m devhost``: serve a v2 Durable Functions app locally, like ``func start``.

``python -m devhost durable <verb> ...`` runs a ``func durable`` command instead
(:mod:`devhost.tools.cli`)."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from devhost.app import hostlog
from devhost.app.appfiles import AppLoadError
from devhost.core.store import NotADevhostStore, StoreLocked
from devhost.host import heap, shutdown, supervisor
from devhost.host.assembly import Config, Devhost
from devhost.tools.dashboard import PATH as DASHBOARD_PATH


def parse_args(argv: list[str] | None = None) -> tuple[Config, str]:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Local stand-in for the Azure Functions host + Durable extension "
                    "(HTTP triggers, Durable client API, orchestrations on SQLite).")
    parser.add_argument("--app", default=".", help="app directory with function_app.py "
                                                   "(default: current directory)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071; 0 = any)")
    parser.add_argument("--db", default=None,
                        help="SQLite file (default: <app>/.devhost/devhost.sqlite3)")
    parser.add_argument("--durability", choices=("process", "power"), default="process",
                        help="'process' (default) survives kill -9; 'power' also a power cut "
                             "(synchronous=FULL, slower)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes sharing the port and the database (default 1; "
                             "2 uses both cores of a 2-core machine)")
    parser.add_argument("--no-pin", action="store_true",
                        help="with --workers 2 or more, let every worker run on any CPU "
                             "(default: worker i is pinned to the i-th CPU, which keeps its "
                             "threads' hand-overs on one CPU; see docs/devhost.md)")
    parser.add_argument("--start-azurite", action="store_true",
                        help="start the project's Azurite (.devhost/azurite) when a queue "
                             "trigger uses UseDevelopmentStorage=true and nothing listens on "
                             "127.0.0.1:10001; it stops with devhost")
    parser.add_argument("--log-level", default=None,
                        help="one level for every log category, replacing host.json "
                             "logging.logLevel (Trace, Debug, Information, Warning, Error, "
                             "Critical, None; default: host.json's, else Information)")
    parser.add_argument("--grace", type=float, default=shutdown.DEFAULT_GRACE,
                        metavar="SECONDS",
                        help="on SIGTERM/Ctrl+C, how long running requests and activities may "
                             f"take to finish (default {shutdown.DEFAULT_GRACE:g})")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.grace < 0:
        parser.error("--grace must be 0 or more seconds")
    if args.log_level is not None:
        try:
            hostlog.parse_level(args.log_level)
        except ValueError as exc:
            parser.error(f"--log-level: {exc}")
    return Config(app_dir=args.app, host=args.host, port=args.port, db_path=args.db,
                  synchronous="FULL" if args.durability == "power" else "NORMAL",
                  workers=args.workers, start_azurite=args.start_azurite,
                  grace=args.grace, pin_workers=not args.no_pin), args.log_level


def banner(host: Devhost) -> str:
    app = host.app
    assert app is not None
    origin = f"http://{'localhost' if host.config.host in ('127.0.0.1', '0.0.0.0') else host.config.host}:{host.port}"
    prefix = f"/{app.route_prefix}" if app.route_prefix else ""
    lines = ["", "Functions:", ""]
    for fn in app.http:
        methods = ",".join(sorted(fn.methods)) if fn.methods else "ALL"
        lines.append(f"        {fn.name}: [{methods}] {origin}{prefix}/{fn.route.template}")
    for name in sorted(app.orchestrators):
        lines.append(f"        {name}: orchestrationTrigger")
    for name in sorted(app.activities):
        lines.append(f"        {name}: activityTrigger")
    if host.triggers is not None:
        lines += [f"        {line}" for line in host.triggers.lines]
    lines += ["", f"Task hub: {app.hub_name}    store: {host.config.database()}",
              f"Resumed {host.recovered[0]} instance(s) with pending messages and "
              f"{host.recovered[1]} pending activity call(s).",
              f"Fast path: {', '.join(host.fastpath) or 'off'} (DEVHOST_FASTPATH=0 turns it off).",
              f"Workers: {host.config.workers} process(es) on one port and one store"
              f"{_pinning(host.config)}.",
              f"Dashboard: {origin}{DASHBOARD_PATH}/",
              "Function keys are not enforced locally (as with `func start`); the deployed app "
              "requires them."]
    lines += [f"warning: {w}" for w in app.warnings]
    if host.triggers is not None:
        lines += [f"warning: {w}" for w in host.triggers.warnings]
    lines.append("Host started. Press Ctrl+C to stop.")
    return "\n".join(lines)


def _pinning(config: Config) -> str:
    if config.workers < 2:
        return ""
    if not config.worker_cpus:
        return ", not pinned to CPUs"
    return (f", pinned to CPU {', '.join(map(str, config.worker_cpus))} "
            f"(--no-pin lets them move)")


async def serve(config: Config) -> int:
    host = Devhost(config)
    try:
        await host.start()
    except (AppLoadError, StoreLocked, NotADevhostStore, OSError) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    if config.worker_index == 0:
        print(banner(host), flush=True)
    heap.settle()  # what startup built stays: no collection need scan it again
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # A worker takes its orders from the supervisor (SIGTERM): Ctrl+C reaches the whole
    # process group, and must count once, not twice.
    signals = (signal.SIGTERM,) if config.shared else (signal.SIGINT, signal.SIGTERM)
    if config.shared:
        loop.add_signal_handler(signal.SIGINT, lambda: None)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if config.worker_index == 0:
        print(shutdown.stopping_message(config.grace), flush=True)
    for sig in signals:
        loop.add_signal_handler(sig, lambda: shutdown.stop_now(host.engine))
    unfinished = await host.stop()
    if unfinished:
        shutdown.report_unfinished(unfinished, config.grace)
    # Everything is committed and closed. A sync activity or HTTP function cut by the grace
    # period still holds its thread, which asyncio.run and the interpreter would wait for.
    shutdown.exit_now(0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["durable"]:
        from devhost.tools import cli  # the `func durable` verbs; see devhost/tools/cli.py
        return cli.main(argv[1:])
    config, level = parse_args(argv)
    try:
        hostlog.configure(hostlog.LogLevels.from_host_json(
            hostlog.read_host_json(config.app_dir), level))
    except ValueError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    if config.shared:
        return supervisor.run(config, serve)
    return asyncio.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
