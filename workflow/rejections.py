"""The root of the domain exceptions, and the rejections of bad input.

These carry only a message, so they sit at the bottom of the package: ``inputs`` raises them
while building the values (``WorkflowKey``) that the exceptions about a run's state, in
``errors``, carry. ``errors`` re-exports every class here; import them from there.
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every domain exception; ``str(exc)`` is safe to show to a client."""


class SettingsError(WorkflowError, ValueError):
    """The environment holds an invalid setting; raised at startup, never per request."""


class InvalidKey(WorkflowError, ValueError):
    """The business key breaks the input rules; the message states which rule."""


class InvalidPayload(WorkflowError, ValueError):
    """The stop request's body is not empty and not valid JSON."""


class PayloadTooLarge(InvalidPayload):
    """The stop request's body is longer than ``inputs.MAX_PAYLOAD_BYTES``."""
