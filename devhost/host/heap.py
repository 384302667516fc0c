"""The garbage collector of a serving devhost process.

A collection holds the GIL from start to end, on whichever thread triggers it: while it runs,
the HTTP loop answers nothing. The SDK's replay leaves its objects in reference cycles (task
and parent, context and executor), and a long history's episode keeps tens of thousands of them
alive long enough to reach the oldest generation, so replays trigger full collections often.
Each one used to scan every object the process held, most of them created at startup (the app,
the SDK, aiohttp, the engine: about 52,000) and alive for good: 40-75 ms with the loop stopped
(status read p99 while four 4.6k-event histories replay: 41-48 ms; with the startup heap
frozen 17 ms, docs/performance.md).

Guarantees: after :func:`settle`, no collection examines the objects that were alive when it
ran; everything created later is collected as before, cycles included. A frozen object is
still freed when its last reference goes (reference counting is untouched); only a reference
cycle among frozen objects that becomes garbage is never reclaimed, which for what startup
builds (modules, functions, the app, the engine) does not happen.
"""
from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then freeze what is left out of every later collection. Call it once,
    in a serving process, when its startup is done; returns the number of frozen objects."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
