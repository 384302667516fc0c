"""The user's function app as the host reads it: its files, its functions and bindings, its settings.

Owns: ``appfiles`` (``local.settings.json``, ``host.json``), ``loader`` (imports the app and
indexes its functions: ``LoadedApp``), ``bindings`` (the timer and queue trigger declarations and
``host.json`` ``extensions.queues``), ``routes`` (route templates), ``ncrontab`` (NCRONTAB
schedules and TimeSpans), ``status`` (runtime statuses; ``overridableExistingInstanceStates``),
``hostlog`` (host-style logs and levels from ``host.json``), ``failures`` (how a failure looks
to the host: the user's frames only), ``limits`` (the request body limit app setting), ``invocations``
(``functionTimeout``; how a stuck invocation's thread is ended).

May import: nothing from devhost outside this package (it is the bottom layer).
"""
