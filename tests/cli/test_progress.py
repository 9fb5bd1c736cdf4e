"""Progress without a terminal: a plain line every `every` seconds and one at the end, never control codes."""

from __future__ import annotations

import io

from ailab.cli.progress import progress


def test_non_tty_progress_prints_plain_lines():
    out = io.StringIO()
    with progress("ingest → kb", stream=out, every=0.0) as update:
        update(1, 3)
        update(3, 3)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest → kb: 1/3 files") and lines[-1].startswith("ingest → kb: 3/3 files")
    assert "\x1b" not in out.getvalue()


def test_a_short_run_prints_nothing():
    out = io.StringIO()
    with progress("ingest → kb", stream=out, every=3600.0) as update:
        update(2, None)
    assert out.getvalue() == ""


def test_a_stage_without_a_count_is_said_at_once():
    """`ailab ingest` ends by catching a large collection's search index up (minutes at a million chunks):
    that step is said when it begins, not left looking like a hung 100 %."""
    out = io.StringIO()
    with progress("ingest → kb", stream=out, every=3600.0) as update:
        update(3, 3)
        update.stage("catching the search index up")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ingest → kb (catching the search index up): 3/3 files")
    assert lines[-1].startswith("ingest → kb (catching the search index up)")  # the closing line too
