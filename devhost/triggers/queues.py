"""Queue triggers on Azure Storage queues (Azurite locally), through ``azure-storage-queue``.

Guarantees, as on the Functions host:
- At least once: a message is received invisible for a lease (renewed while the function runs)
  and deleted only after the function returned. A function that raises releases the message
  after ``visibilityTimeout``; a crash or ``kill -9`` mid-function leaves it to reappear when the
  lease ends, so it is delivered again.
- After ``maxDequeueCount`` failed deliveries the message moves to ``<queue>-poison`` (its text
  unchanged, as stored) and is deleted from the queue, so no message is retried forever. A
  message that does not decode as ``messageEncoding`` says (base64 by default) moves there at
  once: no delivery could ever succeed.
- Polling: up to ``batchSize`` messages are fetched and run concurrently; the next fetch
  happens when at most ``newBatchThreshold`` are still running. An empty queue is polled again
  after a delay that starts at 100 ms and doubles up to ``maxPollingInterval``; a message resets
  it.
- When the connection setting is unset or storage is unreachable, a warning names the function
  and the setting, and the listener keeps trying (everything else in devhost runs).
- Every delivery logs the host's ``Executing``/``Executed`` lines (:mod:`devhost.app.hostlog`); a
  failure is logged once, with the user's frames.
- :meth:`QueueListener.stop` (devhost's shutdown) fetches no more messages and lets the running
  functions finish: a finished one's message is deleted; one cut at the end of the grace period
  (the run task cancelled) keeps its message, which reappears when its lease ends (at least
  once).

Options come from ``host.json`` ``extensions.queues`` with the host's defaults. The receive
lease is the host's 10 minutes; ``DEVHOST_QUEUE_LEASE_SECONDS`` shortens it (tests use it to
see a crashed delivery come back within seconds).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import functools
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, Callable

from azure.functions.queue import QueueMessage as WorkerQueueMessage

from devhost.app import hostlog
from devhost.app.appfiles import AppLoadError, load_settings, read_host_json
from devhost.app.bindings import MIN_POLLING_SECONDS, QueueFunction, QueueOptions

log = logging.getLogger("devhost.queues")

#: Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
           "KBHBeksoGMGw==")
DEV_QUEUE_PORT = 10001

#: The newest storage API version the pinned Azurite (``devhost.triggers.azurite.VERSION``) accepts;
#: newer ``azure-storage-queue`` releases default to versions Azurite refuses.
AZURITE_API_VERSION = "2026-06-06"

LEASE_ENV = "DEVHOST_QUEUE_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 600.0

# The storage SDK logs every HTTP request and response at INFO: one poll is several lines.
for _noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.storage"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class ConnectionProblem(ValueError):
    """The function's connection setting is unset or not a connection string devhost reads."""


def connection_string(setting: str, environ: Mapping[str, str] | None = None) -> str:
    """The storage connection string behind a binding's ``connection`` setting name (the host
    also tries ``AzureWebJobs<name>``); ``UseDevelopmentStorage=true`` means Azurite on
    127.0.0.1:10001.

    Raises: ConnectionProblem saying which setting is missing or unsupported.
    """
    env = os.environ if environ is None else environ
    name = setting or "AzureWebJobsStorage"
    value = env.get(name) or env.get(f"AzureWebJobs{name}")
    if not value:
        if any(k.startswith(f"{name}__") for k in env):
            raise ConnectionProblem(f"setting {name} uses identity-based connections "
                                    f"({name}__...), which devhost does not support; set "
                                    f"{name} to a connection string")
        raise ConnectionProblem(f"app setting {name} is not set")
    if value.strip().lower().replace(" ", "") in ("usedevelopmentstorage=true",
                                                  "usedevelopmentstorage=true;"):
        return development_connection_string()
    return value


def development_connection_string(port: int = DEV_QUEUE_PORT, host: str = "127.0.0.1") -> str:
    """A full connection string for Azurite's queue service."""
    return (f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT};")


def is_emulator(conn: str) -> bool:
    return f"AccountName={DEV_ACCOUNT}".lower() in conn.replace(" ", "").lower()


def queue_client(conn: str, queue_name: str) -> Any:
    """An async ``QueueClient`` that sends and receives message text unchanged (encoding is
    applied here, explicitly, as the host does)."""
    from azure.storage.queue._shared.policies_async import ExponentialRetry
    from azure.storage.queue.aio import QueueClient

    extra: dict[str, Any] = {"api_version": AZURITE_API_VERSION} if is_emulator(conn) else {}
    # The SDK's default retry waits 15 s, then 45 s: the listener's own polling already retries,
    # so a short one keeps an outage visible and a recovered Azurite quickly used again. (The
    # async policy is importable only from the SDK's _shared package; the public
    # ExponentialRetry is the sync one.)
    retry = ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2,
                             random_jitter_range=1)
    return QueueClient.from_connection_string(conn, queue_name, retry_policy=retry,
                                              connection_timeout=5, **extra)


def decode(text: str, encoding: str) -> bytes:
    """A message's stored text as the bytes the function gets.

    Raises: ValueError when ``encoding`` is base64 and the text is not base64.
    """
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"message text is not base64 ({exc}); host.json "
                         "extensions.queues.messageEncoding is 'base64'") from exc


def encode(body: bytes, encoding: str) -> str:
    """The text to store for ``body`` so that :func:`decode` returns it."""
    if encoding == "none":
        return body.decode("utf-8")
    return base64.b64encode(body).decode("ascii")


class QueueListener:
    """Polls one function's queue and runs the function per message, until cancelled."""

    def __init__(self, fn: QueueFunction, options: QueueOptions,
                 client_binding: Callable[[], str | None],
                 environ: Mapping[str, str] | None = None) -> None:
        self.fn, self.options, self._binding = fn, options, client_binding
        self._env = os.environ if environ is None else environ
        self.lease = float(self._env.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS)
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Fetch no more messages: :meth:`run` returns once the running functions finished
        (cancel it to cut them; their messages stay in the queue)."""
        self._stopping.set()
        self._slot_free.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`stop` is called meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    def describe_problem(self) -> str | None:
        """Why this listener cannot run at all (unset connection), or None."""
        try:
            connection_string(self.fn.connection, self._env)
        except ConnectionProblem as exc:
            return (f"queue trigger {self.fn.name}: {exc}; the function will not run "
                    f"(connection {self.fn.connection or 'AzureWebJobsStorage'})")
        return None

    async def run(self) -> None:
        problem = self.describe_problem()
        if problem:
            log.warning(problem)
            return
        conn = connection_string(self.fn.connection, self._env)
        queue = queue_client(conn, self.fn.queue_name)
        poison = queue_client(conn, f"{self.fn.queue_name}-poison")
        delay = MIN_POLLING_SECONDS
        unreachable, created = False, False
        try:
            while not self._stopping.is_set():
                try:
                    if not created:
                        # The host waits for a missing queue; devhost creates it, so that a
                        # first local message has somewhere to go.
                        await _create_if_missing(queue)
                        created = True
                    received = [m async for m in queue.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=max(1, int(self.lease)))]
                except Exception as exc:  # azure-core raises many types for one outage
                    if not unreachable:
                        log.warning("queue trigger %s: storage from setting %s is unreachable "
                                    "(%s); retrying", self.fn.name,
                                    self.fn.connection or "AzureWebJobsStorage",
                                    _one_line(exc))
                    unreachable = True
                    delay = min(self.options.max_polling_interval, max(1.0, delay * 2))
                    await self._pause(delay)
                    continue
                if unreachable:
                    log.warning("queue trigger %s: storage is reachable again", self.fn.name)
                    unreachable = False
                if self._stopping.is_set():
                    # Fetched while stop() came: hand them back at once, unrun.
                    for message in received:
                        await _quietly(queue.update_message(message.id, message.pop_receipt,
                                                            visibility_timeout=0))
                    break
                if not received:
                    await self._pause(delay)
                    delay = min(self.options.max_polling_interval, delay * 2)
                    continue
                delay = MIN_POLLING_SECONDS
                for message in received:
                    task = asyncio.create_task(self._process(queue, poison, message))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                while len(self._inflight) > self.options.new_batch_threshold \
                        and not self._stopping.is_set():
                    self._slot_free.clear()
                    await self._slot_free.wait()
            if self._inflight:
                await asyncio.wait(list(self._inflight))  # stopping: let them finish
        finally:
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await queue.close()
            await poison.close()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_free.set()

    async def _process(self, queue: Any, poison: Any, message: Any) -> None:
        receipt = [message.pop_receipt]
        if message.dequeue_count > self.options.max_dequeue_count:
            await self._to_poison(queue, poison, message, receipt[0],
                                  f"dequeued {message.dequeue_count} times")
            return
        try:
            body = decode(message.content, self.options.message_encoding)
        except ValueError as exc:
            await self._to_poison(queue, poison, message, receipt[0], str(exc))
            return
        renew = asyncio.create_task(self._keep_leased(queue, message, receipt))
        invocation = hostlog.Invocation(
            self.fn.name, f"New queue message detected on '{self.fn.queue_name}'.")
        try:
            try:
                await self._call(message, body)
            finally:
                renew.cancel()
                await asyncio.gather(renew, return_exceptions=True)
        except Exception as exc:
            invocation.failed(exc)
            log.warning("queue trigger %s: message %s failed (dequeue count %d of %d)",
                        self.fn.name, message.id, message.dequeue_count,
                        self.options.max_dequeue_count)
            if message.dequeue_count >= self.options.max_dequeue_count:
                await self._to_poison(queue, poison, message, receipt[0],
                                      f"failed {message.dequeue_count} times")
            else:
                await _quietly(queue.update_message(
                    message.id, receipt[0],
                    visibility_timeout=int(self.options.visibility_timeout)))
            return
        invocation.succeeded()
        await _quietly(queue.delete_message(message.id, receipt[0]))

    async def _call(self, message: Any, body: bytes) -> None:
        msg = WorkerQueueMessage(
            id=message.id, body=body, dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on, insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)
        kwargs: dict[str, Any] = {self.fn.trigger_param: msg}
        if self.fn.client_param:
            kwargs[self.fn.client_param] = self._binding()
        if self.fn.is_async:
            await self.fn.user_function(**kwargs)
        else:
            await asyncio.get_running_loop().run_in_executor(
                None, hostlog.in_context(functools.partial(self.fn.user_function, **kwargs)))

    async def _keep_leased(self, queue: Any, message: Any, receipt: list[str]) -> None:
        """Renew the lease at half its length while the function runs (the host does too);
        each renewal returns a new pop receipt, which the final delete must use."""
        while True:
            await asyncio.sleep(max(0.5, self.lease / 2))
            updated = await queue.update_message(message.id, receipt[0],
                                                 visibility_timeout=max(1, int(self.lease)))
            receipt[0] = updated.pop_receipt

    async def _to_poison(self, queue: Any, poison: Any, message: Any, receipt: str,
                         why: str) -> None:
        # Copy first, then delete: a crash in between leaves a duplicate, never a loss.
        try:
            await _create_if_missing(poison)
            await poison.send_message(message.content)
        except Exception as exc:  # storage went away: the message reappears after its lease
            log.warning("queue trigger %s: could not move message %s to %s-poison yet: %s",
                        self.fn.name, message.id, self.fn.queue_name, _one_line(exc))
            return
        await _quietly(queue.delete_message(message.id, receipt))
        log.error("queue trigger %s: message %s moved to %s-poison (%s)", self.fn.name,
                  message.id, self.fn.queue_name, why)


async def _create_if_missing(queue: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    try:
        await queue.create_queue()
    except ResourceExistsError:
        pass


async def _quietly(operation: Any) -> None:
    """Delete/release of a message whose lease was lost (it was redelivered meanwhile): the
    other delivery owns it now, so the stale receipt's failure is only logged."""
    try:
        await operation
    except Exception as exc:
        log.warning("queue message update skipped: %s", _one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def main(argv: list[str] | None = None) -> int:
    """``python -m devhost.queues QUEUE TEXT``: put one message on a queue of the app's storage
    (``AzureWebJobsStorage`` from the environment or ``local.settings.json``; unset means the
    development storage, Azurite), encoded as the app's ``host.json`` ``messageEncoding`` says."""
    parser = argparse.ArgumentParser(prog="python -m devhost.queues",
                                     description="Put one message on a storage queue.")
    parser.add_argument("queue")
    parser.add_argument("text", help="the message body, e.g. a JSON object")
    parser.add_argument("--app", default=".")
    parser.add_argument("--connection", default="AzureWebJobsStorage",
                        help="app setting holding the connection string")
    args = parser.parse_args(argv)
    try:
        load_settings(args.app)
    except AppLoadError as exc:
        print(f"devhost.queues: {exc}", file=sys.stderr)
        return 2
    if not os.environ.get(args.connection) and not os.environ.get(f"AzureWebJobs{args.connection}"):
        # As `make run` does for a fresh clone without local.settings.json.
        os.environ[args.connection] = "UseDevelopmentStorage=true"
    try:
        options = QueueOptions.from_host_json(read_host_json(args.app))
        conn = connection_string(args.connection)
    except (AppLoadError, ValueError) as exc:
        print(f"devhost.queues: {exc}", file=sys.stderr)
        return 2

    async def send() -> str:
        async with queue_client(conn, args.queue) as queue:
            await _create_if_missing(queue)
            sent = await queue.send_message(encode(args.text.encode("utf-8"),
                                                   options.message_encoding))
            return str(sent.id)

    try:
        print(json.dumps({"queue": args.queue, "id": asyncio.run(send())}))
    except Exception as exc:
        print(f"devhost.queues: could not reach the queue: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
