"""The durable core: orchestration episodes, the engine that drives them, and their SQLite store.

Owns: ``episode`` (one episode: snapshot + messages -> commit; replay and the action walk),
``engine`` (drains, timers, activities, the orchestrator threads), ``store`` (SQLite, every transition
all-or-nothing), ``history`` (DTFx history events), ``payloads`` (strict JSON in, stored values
out), ``hold`` (the test-only episode hold, ``DEVHOST_TEST_HOLD_FILE``).

May import: :mod:`devhost.app`. Never the triggers, the tools or the host.
"""
