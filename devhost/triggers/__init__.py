"""Non-HTTP triggers: timers on NCRONTAB schedules, Storage queues, and the Azurite emulator.

Owns: ``runner`` (runs an app's timer and queue triggers), ``timers``, ``queues`` (the listener;
``python -m devhost.queues QUEUE TEXT`` enqueues a message), ``azurite`` (the pinned emulator;
``python -m devhost.triggers.azurite install``).

May import: :mod:`devhost.app`, :mod:`devhost.core`. Never the tools or the host.
"""
