"""A bare aiohttp hello-world server: the HTTP ceiling the benchmark compares devhost with.

Configured like devhost's server (aiohttp, no access log), so the difference between the two is
what devhost does per request, not the framework.
"""
from __future__ import annotations

import argparse

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/admin/host/status", hello)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
