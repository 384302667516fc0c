"""The workflow slice: one long-running orchestration per business key.

Modules, one concept each:

- ``inputs``: which keys are accepted and how a key becomes an instance id.
- ``settings``: configuration read once from the environment.
- ``errors``: the few domain exceptions the rest of the package raises.
- ``lookup``: the adapter over ``DurableOrchestrationClient`` for start, check and stop.
- ``orchestrator``: the deterministic orchestrator generator.
- ``responses``: JSON HTTP responses and the one exception -> status table.
- ``endpoints``: the HTTP handlers the function app glue delegates to.
- ``queue_stop``: the queue message contract; a queued stop is ``lookup.stop``.
- ``retention``: the scheduled purge of old finished runs (and its two client calls).
"""
