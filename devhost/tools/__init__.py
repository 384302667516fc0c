"""The operator's tools: the Durable management API, the dashboard, the CLI and what they read.

Owns: ``management`` (the Durable HTTP API), ``dashboard`` (its routes; the page is in
``static/``), ``catalog`` (searches the management API lacks), ``timeline`` (history to
timeline), ``cli`` (``python -m devhost durable ...``).

May import: :mod:`devhost.app`, :mod:`devhost.core`. Never the triggers or the host.
"""
