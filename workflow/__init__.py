"""The workflow slice: one long-running orchestration per business key.

Modules, one concept each:

- ``inputs``: which keys are accepted and how a key becomes an instance id.
- ``settings``: names, routes and limits, and configuration read once from the environment.
- ``status``: ``WorkflowStatus``, what the app knows about a run (a domain value).
- ``rejections``: the root domain exception and the rejections of bad input (no imports).
- ``errors``: the few domain exceptions the rest of the package raises (re-exports
  ``rejections``).
- ``lookup``: the adapter over ``DurableOrchestrationClient`` for start, check and stop.
- ``orchestrator``: the deterministic orchestrator generator.
- ``responses``: JSON HTTP responses and the one exception -> status table.
- ``endpoints``: the HTTP handlers the function app glue delegates to.
- ``openapi``: the OpenAPI document of the HTTP surface.
- ``queue_stop``: the queue message contract; a queued stop is ``lookup.stop``.
- ``retention``: the scheduled purge of old finished runs (and its two client calls).
"""
