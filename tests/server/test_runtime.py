"""The interpreter settings a serving process runs with (`server.app._tune_runtime`), checked in a child
interpreter: they are process-wide, and the test process keeps its own."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, sys
from ailab.server.app import _tune_runtime
_tune_runtime()
print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "switch": sys.getswitchinterval()}))
"""


def test_a_serving_process_collects_rarely_and_hands_the_gil_over_often() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    assert got["threshold"] == [10_000, 20, 10]
    assert got["frozen"] > 0  # the start-up heap is out of the collector's reach
    assert got["switch"] == 0.001
