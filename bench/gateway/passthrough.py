"""The Python floor: a bare raw-ASGI pass-through (aiohttp client, orjson), about 40 lines, no features.

Run: uvicorn bench.gateway.passthrough:app --workers 2, with BENCH_UPSTREAM_JSON / BENCH_UPSTREAM_SSE set.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] == "lifespan":
        while (msg := await receive())["type"] != "lifespan.shutdown":
            if msg["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
        await _session.close()  # type: ignore[union-attr]
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    stream = bool(orjson.loads(body).get("stream"))
    upstream = os.environ["BENCH_UPSTREAM_SSE" if stream else "BENCH_UPSTREAM_JSON"]
    async with _session.post(upstream, data=body, headers={"Content-Type": "application/json"}) as resp:  # type: ignore[union-attr]
        ctype = b"text/event-stream" if stream else b"application/json"
        await send(
            {"type": "http.response.start", "status": resp.status, "headers": [(b"content-type", ctype)]}
        )
        if stream:
            async for chunk in resp.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": await resp.read()})
