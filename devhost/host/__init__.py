"""The host process: the HTTP server and everything that runs, guards and stops it.

Owns: ``assembly`` (``Config``, ``Devhost``: loader, store, engine, triggers and server as one
running devhost), ``server`` (HTTP functions and the host's routes), ``guard`` (the Host and
Origin rule), ``connections`` (slow clients, the connection cap), ``fastpath`` (SDK shortcuts),
``shutdown`` (the grace period), ``supervisor`` (``--workers N``), ``process`` (devhost as a
child process for tests and the benchmark).

May import: :mod:`devhost.app`, :mod:`devhost.core`, :mod:`devhost.triggers`, :mod:`devhost.tools`.
"""
