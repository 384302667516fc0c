"""The test-only episode hold: proofs pause episode processing, line up messages, and release.

A proof that names a race (a stop before the first wait, many stops at once, an event and a due
timer in one episode, a kill between acknowledging an event and processing it) must make that
race happen rather than hope for it. It starts devhost with ``DEVHOST_TEST_HOLD_FILE`` naming a
path it owns; while that file exists every engine drain computes and commits nothing and retries
after ``RECHECK_SECONDS``. HTTP requests and management calls (start, raiseEvent, terminate...)
keep committing their messages meanwhile, so deleting the file releases them into one episode.

Guarantees: with the variable unset (every normal ``make run``) :func:`engaged` is ``False``
without touching the file system, so the hold is unreachable outside tests. The check is per
process and reads only the file, so every worker of ``--workers N`` honours the same file.
"""
from __future__ import annotations

import os

ENV = "DEVHOST_TEST_HOLD_FILE"
"""Environment variable naming the hold file; unset in normal runs."""

RECHECK_SECONDS = 0.02
"""How soon a held drain retries (removing the file releases it without any other signal)."""


def engaged() -> bool:
    """True while the file named by ``$DEVHOST_TEST_HOLD_FILE`` exists.

    False, with no system call, when the variable is unset or empty.
    """
    path = os.environ.get(ENV)
    return bool(path) and os.path.exists(path)
