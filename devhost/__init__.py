"""devhost: a local stand-in for the Azure Functions host and the Durable extension.

Run ``python -m devhost`` in a v2-model app directory; see docs/devhost.md for what it does and how it
differs from the real host.
"""

__version__ = "0.1.0"
"""devhost's version: the one place it is written (pyproject.toml reads it from here)."""
