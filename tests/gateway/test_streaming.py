"""The stream relay's disconnect watch leaves no reference cycle behind: a request's objects are freed when it
ends, by reference counting, not kept for the cyclic GC (whose full collections pause the event loop)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from ailab.gateway.streaming import DisconnectWatch, Seen


async def _never() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _watch_and_stop(started: bool) -> weakref.ref[DisconnectWatch]:
    watch = DisconnectWatch(_never, Seen())
    if started:
        await asyncio.sleep(0)  # the watch task runs up to its receive()
    assert watch.stop() is False
    await asyncio.sleep(0)  # the task takes its cancellation
    await asyncio.sleep(0)
    return weakref.ref(watch)


def test_a_stopped_watch_is_freed_without_the_cyclic_gc() -> None:
    gc.collect()
    gc.disable()
    try:
        for started in (
            False,
            True,
        ):  # stopped before its task first ran (a stream relayed at once), or after
            ref = asyncio.run(_watch_and_stop(started))
            assert ref() is None, f"watch kept alive by a reference cycle (started={started})"
    finally:
        gc.enable()


def test_a_disconnect_cancels_the_relay_and_stop_reports_it() -> None:
    async def main() -> bool:
        gate = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gate.wait()
            return {"type": "http.disconnect"}

        async def relay() -> bool:
            watch = DisconnectWatch(receive, Seen())
            gate.set()
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return watch.stop()
            return False

        return await asyncio.create_task(relay())

    assert asyncio.run(main()) is True
