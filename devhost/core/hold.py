"""A test-only "episode hold": while engaged, no engine computes or commits an episode.

Contract (shared with the proofs): ``ENV`` names a file; while that file exists every drain
delivers nothing and re-arms itself after ``RECHECK_SECONDS``, so deleting the file releases it
without any other signal. HTTP and management calls keep committing meanwhile, which is how a
proof gathers several messages into one episode. With the variable unset (every normal run) the
hold is unreachable and costs no system call.
"""
from __future__ import annotations

import os

ENV = "DEVHOST_TEST_HOLD_FILE"
RECHECK_SECONDS = 0.02



def engaged() -> bool:
    """True while the file named by ``$DEVHOST_TEST_HOLD_FILE`` exists (False when unset)."""
    path = os.environ.get(ENV, "")
    return bool(path) and os.path.exists(path)
