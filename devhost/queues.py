"""``python -m devhost.queues QUEUE TEXT``: put one message on a queue of the app (the
command's stable name; the queue trigger itself is :mod:`devhost.triggers.queues`)."""
from __future__ import annotations

import sys

from devhost.triggers.queues import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
