"""Random ids for requests, responses and their items, made without a system call.

`os.urandom` releases the GIL around its `getrandom()` call; on the event loop thread, that hands the GIL to a
busy background thread (the ledger or response-store writer), and the loop waits for it back. These ids name
things, they are not secrets (a stored response is only its owner's; request ids are printed in logs), so
Python's generator is enough: seeded from the OS at start-up, and re-seeded in every forked worker.
"""

from __future__ import annotations

import random


def random_hex(nbytes: int) -> str:
    """`nbytes` random bytes as 2 × `nbytes` lowercase hex digits (as `os.urandom(nbytes).hex()`)."""
    return random.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()
