"""Random hex ids without a system call: the shape of `os.urandom(n).hex()`, and distinct in forked workers."""

from __future__ import annotations

import os
import re

from ailab.gateway.ids import random_hex


def test_shape_and_uniqueness() -> None:
    for n in (8, 9, 12, 16):
        ids = {random_hex(n) for _ in range(5000)}
        assert len(ids) == 5000
        assert all(re.fullmatch(f"[0-9a-f]{{{2 * n}}}", i) for i in ids)
    assert any(random_hex(12).startswith("0") for _ in range(200))  # leading zero bits are kept


def test_a_forked_worker_draws_other_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its generator was re-seeded at the fork
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != random_hex(16) and len(child) == 32
