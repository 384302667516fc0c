"""Slow and surplus clients: header and body read timeouts, a cap on open connections.

Modelled on Kestrel, the web server of the Functions host (``KestrelServerLimits`` in
dotnet/aspnetcore, ``src/Servers/Kestrel/Core/src/KestrelServerLimits.cs``):

- **Request head**: a connection must deliver a complete request line and headers within
  ``RequestHeadersTimeout``, 30 s, counted from its first byte (a new connection: from when it
  opened); otherwise it is closed. Idle keep-alive connections are aiohttp's
  ``keepalive_timeout`` business.
- **Request body**: after a grace period of 5 s the body must keep arriving at
  ``MinRequestBodyDataRate``, 240 bytes/s on average; a slower one is answered 408 and the
  connection closed (:func:`read_body`).
- **Open connections**: Kestrel's ``MaxConcurrentConnections`` is unlimited, but descriptors are
  not: devhost keeps at most :func:`default_max_connections` (the ``ulimit -n`` soft limit minus
  a reserve for its database, logs and outgoing calls; ``DEVHOST_MAX_CONNECTIONS`` overrides).
  At the cap a new connection displaces the oldest one still waiting for its request head (a
  silent or trickling client), else it is closed at once; either way a warning is logged at
  most once a minute, and asyncio's "out of system resource" accept errors are folded into
  that warning instead of one traceback per attempt.
"""
from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from typing import Any, Awaitable, Callable

from aiohttp import web, web_protocol, web_server

log = logging.getLogger("devhost.server")

#: Kestrel's ``RequestHeadersTimeout`` default, seconds.
HEADER_TIMEOUT = 30.0
#: Kestrel's ``MinRequestBodyDataRate`` default: bytes per second, and its grace period.
MIN_BODY_RATE = 240.0
BODY_GRACE = 5.0
#: Descriptors kept free for everything but client connections: the database, logs and
#: outgoing calls (64), plus one burst of accepts (aiohttp's listen backlog, 128): a displaced
#: connection's descriptor is released only on the event loop's next turn.
FD_RESERVE = 64 + 128
WARN_EVERY = 60.0
HEADER_TIMEOUT_SETTING = "DEVHOST_HEADER_TIMEOUT"
MAX_CONNECTIONS_SETTING = "DEVHOST_MAX_CONNECTIONS"
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 58\r\n\r\n"
                   b'{"error": "the request head did not arrive in time (408)"}')


def default_max_connections() -> int:
    """``DEVHOST_MAX_CONNECTIONS`` when set, else the descriptor soft limit minus
    :data:`FD_RESERVE` (at least 16: 256 descriptors, macOS's default, give 64)."""
    configured = os.environ.get(MAX_CONNECTIONS_SETTING, "").strip()
    if configured:
        return max(1, int(configured))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, soft - FD_RESERVE)


class Limits:
    """The connection limits of one devhost process and its bookkeeping."""

    def __init__(self, max_connections: int | None = None,
                 header_timeout: float | None = None) -> None:
        self.max_connections = max_connections or default_max_connections()
        setting = os.environ.get(HEADER_TIMEOUT_SETTING, "").strip()
        self.header_timeout = header_timeout or (float(setting) if setting else HEADER_TIMEOUT)
        #: Open connections, oldest first (dicts keep insertion order).
        self.open: dict[LimitedHandler, None] = {}
        self.refused = 0
        self._warned_at = -WARN_EVERY

    def warn(self, message: str) -> None:
        """Log ``message`` at most once per :data:`WARN_EVERY` seconds, counting the rest."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("%s (%d connection(s) refused or displaced so far)", message,
                        self.refused)

    def admit(self, handler: LimitedHandler) -> bool:
        """Make room for ``handler`` under the cap; False when there is none."""
        if len(self.open) >= self.max_connections:
            self.refused += 1
            waiting = next((h for h in self.open if h.awaiting_head), None)
            self.warn(f"devhost has {len(self.open)} open connections, its limit "
                      f"({MAX_CONNECTIONS_SETTING}, else ulimit -n minus {FD_RESERVE}); "
                      + ("the oldest one still waiting for its request head was closed"
                         if waiting else "new connections are closed"))
            if waiting is None:
                return False
            waiting.give_up()
        self.open[handler] = None
        return True

    def exception_handler(self, previous: Callable[..., Any] | None
                          ) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
        """An event-loop exception handler that folds asyncio's accept failures for lack of
        descriptors into :meth:`warn`, and passes anything else on."""

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == "socket.accept() out of system resource":
                self.refused += 1
                self.warn("devhost ran out of file descriptors accepting a connection "
                          "(raise ulimit -n, or lower DEVHOST_MAX_CONNECTIONS)")
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        return handle


class LimitedHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler under :class:`Limits`."""

    limits: Limits

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.awaiting_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._admitted = self.limits.admit(self)
        if not self._admitted:
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._head_timer = asyncio.get_running_loop().call_later(
            self.limits.header_timeout, self.give_up)

    def data_received(self, data: bytes) -> None:
        if not self.awaiting_head and self._head_timer is None \
                and not self._request_in_progress:
            # The first byte of the next request on a kept-alive connection.
            self.awaiting_head = True
            self._arm()
        super().data_received(data)

    def head_received(self) -> None:
        """The request's head arrived: its handler is running."""
        self.awaiting_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def give_up(self) -> None:
        """Close a connection whose request head did not arrive in time (408 first). It stops
        counting against the cap at once (its descriptor is released on the loop's next turn)."""
        self._head_timer = None
        self.awaiting_head = False
        self.limits.open.pop(self, None)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            try:
                transport.write(_TIMEOUT_ANSWER)
            finally:
                transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self.limits.open.pop(self, None)
        if self._admitted:
            super().connection_lost(exc)


class LimitedServer(web_server.Server):
    """aiohttp's server, making :class:`LimitedHandler` connections."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler_class = type("Handler", (LimitedHandler,), {"limits": limits})

    def __call__(self) -> web_protocol.RequestHandler:
        return self.handler_class(self, loop=self._loop, **self._kwargs)


class LimitedRunner(web.AppRunner):
    """An ``AppRunner`` whose connections are :class:`LimitedHandler`."""

    def __init__(self, app: web.Application, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.limits.exception_handler(loop.get_exception_handler()))
        # The same server, making LimitedHandler connections.
        return LimitedServer(server.request_handler, request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation, loop=loop,
                             limits=self.limits, **server._kwargs)


@web.middleware
async def head_middleware(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Tells the connection its request head arrived (the header timeout stops)."""
    protocol = request.protocol
    if isinstance(protocol, LimitedHandler):
        protocol.head_received()
    return await handler(request)


async def read_body(request: web.Request, max_body: int) -> bytes | None:
    """The request body, read at least at Kestrel's minimum data rate (:data:`MIN_BODY_RATE`
    bytes/s on average after :data:`BODY_GRACE` seconds); None when it arrives slower.

    Raises: web.HTTPRequestEntityTooLarge past ``max_body`` bytes.
    """
    if not request.body_exists:
        return b""
    if request.content.is_eof():  # all of it has arrived (most small bodies): nothing to wait for
        body = request.content.read_nowait()
        if len(body) > max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=max_body, actual_size=len(body))
        return body
    loop = asyncio.get_running_loop()
    start, size = loop.time(), 0
    chunks: list[bytes] = []
    while True:
        try:
            # asyncio.timeout, not wait_for: no task per chunk on the hot path.
            async with asyncio.timeout_at(start + BODY_GRACE + (size + 1) / MIN_BODY_RATE):
                chunk = await request.content.readany()
        except TimeoutError:
            return None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=max_body, actual_size=size)
        chunks.append(chunk)
