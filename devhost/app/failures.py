"""How a failed Python function looks to the Functions host: the worker's exception text with
the user's own frames, and the activity failure the Durable extension records.

The Python worker reports a failed invocation as ``RpcException(message="<Type>: <text>",
stack_trace=<formatted frames>)``; the host wraps it as ``Result: Failure\\nException:
<message>\\nStack: <stack>`` (``Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException``). For
an activity, the extension's ``TaskActivityShim`` records ``TaskFailed`` with ``Reason =
"Activity function '<name>' failed: <that text>"`` and ``Details`` = the serialised exception
(JSON); the SDK hands the orchestrator ``Exception(f"{Reason} \\n {Details}")``.

Guarantees: no frame of devhost's own package ever appears in what this module produces; the
leading frames of the machinery that called the user's code (asyncio, thread pools, the
Functions and Durable SDKs) are dropped too, so the stack starts at the user's function.
"""
from __future__ import annotations

import json
import os
import traceback

import azure.durable_functions
import azure.functions

_DEVHOST = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # devhost/, not devhost/app/
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
#: Code that calls user functions: dropped while it leads the stack, kept once user code
#: called into it (a library call that raised is worth seeing).
_CALLERS = (
    _DEVHOST,
    os.path.dirname(os.path.abspath(azure.functions.__file__)) + os.sep,
    os.path.dirname(os.path.abspath(azure.durable_functions.__file__)) + os.sep,
    os.path.join(_STDLIB, "asyncio") + os.sep,
    os.path.join(_STDLIB, "concurrent") + os.sep,
    os.path.join(_STDLIB, "threading.py"),
    os.path.join(_STDLIB, "functools.py"),
)

#: The .NET type the host's error data converter names for a worker exception.
_RPC_EXCEPTION_TYPE = ("Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException, "
                       "Microsoft.Azure.WebJobs.Script")
_HRESULT_EXCEPTION = -2146233088  # COR_E_EXCEPTION, the HResult of a plain System.Exception


def user_frames(exc: BaseException) -> traceback.StackSummary:
    """The frames of ``exc``'s traceback that belong to the user: the leading run of caller
    frames (devhost, SDKs, asyncio, thread pool) is dropped, and devhost's frames anywhere."""
    frames = traceback.extract_tb(exc.__traceback__)
    start = 0
    while start < len(frames) and frames[start].filename.startswith(_CALLERS):
        start += 1
    return traceback.StackSummary.from_list(
        [f for f in frames[start:] if not f.filename.startswith(_DEVHOST)])


def worker_message(exc: BaseException) -> str:
    """``<Type>: <text>``, as the Python worker reports an exception."""
    return f"{type(exc).__name__}: {exc}"


def worker_stack(exc: BaseException) -> str:
    """The user's frames formatted as the worker sends them (``traceback`` format)."""
    return "".join(user_frames(exc).format())


def host_text(exc: BaseException) -> str:
    """The host's text for a failed invocation: ``Result: Failure`` / ``Exception:`` /
    ``Stack:``."""
    return f"Result: Failure\nException: {worker_message(exc)}\nStack: {worker_stack(exc)}"


def activity_failure(name: str, exc: BaseException) -> tuple[str, str]:
    """``(Reason, Details)`` of the ``TaskFailed`` event for activity ``name`` raising ``exc``.

    ``Details`` is JSON with the keys scripts parse from the host's serialised
    ``RpcException`` (``Message``, ``RemoteMessage``, ``RemoteStackTrace``); .NET-only members
    are given their empty values.
    """
    text = host_text(exc)
    details = {
        "$type": _RPC_EXCEPTION_TYPE,
        "IsUserException": False,
        "RemoteStackTrace": worker_stack(exc),
        "RemoteMessage": worker_message(exc),
        "RemoteTypeName": None,
        "Message": text,
        "Data": {},
        "InnerException": None,
        "HelpLink": None,
        "Source": None,
        "HResult": _HRESULT_EXCEPTION,
        "StackTrace": None,
    }
    return f"Activity function '{name}' failed: {text}", json.dumps(details)
