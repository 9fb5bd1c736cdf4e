"""Chat completion chunks → the Responses API's stream events, in OpenAI's documented order:

    response.created, response.in_progress,
    per output item: response.output_item.added,
      text:  response.content_part.added, response.output_text.delta …, response.output_text.done,
             response.content_part.done
      calls: response.function_call_arguments.delta …, response.function_call_arguments.done
    response.output_item.done, and last response.completed (or response.incomplete) with usage.

Every event carries `sequence_number`, counting from 0. The translator is pure: chunks in, events out.
`start_wire` and `feed_wire` give the same events already encoded as SSE, with the stream's common cases
(the two opening snapshots, a chunk that only adds text to the open message) spliced into pre-encoded
bytes instead of built as dicts: the same bytes `sse` makes of the events, for a fraction of the CPU.
"""

from __future__ import annotations

from typing import Any

import orjson

from ailab.gateway.chunks import decode_chunk
from ailab.gateway.providers.base import loads_event
from ailab.gateway.responses.from_chat import call_item, complete, message_item, text_part
from ailab.gateway.types import Usage


def _head(kind: bytes) -> bytes:
    """An event's SSE bytes up to its sequence number's digits (`_event` puts type and number first)."""
    return b"event: " + kind + b'\ndata: {"type":"' + kind + b'","sequence_number":'


_DELTA_HEAD = _head(b"response.output_text.delta")
_ADDED_HEAD = _head(b"response.output_item.added")
_PART_ADDED_HEAD = _head(b"response.content_part.added")
_TEXT_DONE_HEAD = _head(b"response.output_text.done")
_PART_DONE_HEAD = _head(b"response.content_part.done")
_ITEM_DONE_HEAD = _head(b"response.output_item.done")
_SNAPSHOT_HEADS = {
    kind: _head(kind)
    for kind in (b"response.created", b"response.in_progress", b"response.completed", b"response.incomplete")
}
# `text_part(...)` encoded around its text (from_chat.text_part: type, text, annotations, logprobs).
_PART = (b'{"type":"output_text","text":', b',"annotations":[],"logprobs":[]}')
# A message's three closing events (output_text.done, content_part.done, output_item.done) with the fields
# in `_text_event`'s, `_part_event`'s and `message_item`'s order.
_CLOSE_MESSAGE = (
    b'%s%d%s,"logprobs":[],"text":%s}\n\n'
    b'%s%d%s,"part":%s}\n\n'
    b'%s%d,"output_index":%d,"item":{"type":"message","id":%s,"status":"completed","role":"assistant",'
    b'"content":[%s]}}\n\n'
)


def sse(event: dict[str, Any]) -> bytes:
    data: bytes = orjson.dumps(event)
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + data + b"\n\n"


def text_only(chunk: dict[str, Any]) -> str | None:
    """The text of a chunk that does nothing but continue the answer's text (one choice, index 0, a
    content delta, no tool calls, no finish_reason); None for any other chunk."""
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("index", 0) != 0 or choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or delta.get("tool_calls"):
        return None
    content = delta.get("content")
    return content if type(content) is str and content else None


class ChatToEvents:
    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response  # the skeleton; its output fills in as items finish
        self.seq = 0
        self.items: list[dict[str, Any]] = []  # every output item, in output_index order
        self.message: dict[str, Any] | None = None  # the message item being streamed
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index → its open item
        self.open_call: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        self._where: dict[int, int] = {}  # id(item) → its output_index (the items live in `items`)
        # While a message is open: the bytes its events have after sequence_number (`item_id`,
        # `output_index`, `content_index`), and those of its text delta event up to the delta.
        self._at = b""
        self._delta_mid: bytes | None = None
        self._id_json = b""  # the open message's id, as JSON

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def _snapshot(self, kind: str) -> dict[str, Any]:
        # Shallow copies are enough: the response's and items' fields are replaced, never mutated in place.
        return self._event(kind, response=dict(self.response))

    def start(self) -> list[dict[str, Any]]:
        return [self._snapshot("response.created"), self._snapshot("response.in_progress")]

    def start_wire(self) -> bytes:
        """`start()` as SSE: the skeleton is encoded once for both snapshots."""
        response = orjson.dumps(self.response)
        return self._snapshot_wire(b"response.created", response) + self._snapshot_wire(
            b"response.in_progress", response
        )

    def _snapshot_wire(self, kind: bytes, response: bytes) -> bytes:
        """`sse(self._snapshot(kind))` from the response's JSON, encoded by the caller."""
        self.seq += 1
        head = _SNAPSHOT_HEADS.get(kind) or _head(kind)
        return b'%s%d,"response":%s}\n\n' % (head, self.seq - 1, response)

    def feed_wire(self, chunk: dict[str, Any]) -> bytes:
        """`feed(chunk)` as SSE. A chunk that only adds text (the bulk of a stream) is spliced into the
        pre-encoded delta event, and so is the message it opens; anything else takes `feed`."""
        return self.feed_chunks([chunk])

    def feed_chunks(self, chunks: list[dict[str, Any]]) -> bytes:
        """`feed_wire` of each chunk, joined: `text_only`'s test is made in the loop itself, and a chunk
        `feed` makes no event of (a role, an empty or null content, a bare finish_reason, usage) is taken
        here too, so the bulk of a stream costs no call a chunk but the encoding of its text."""
        out: list[bytes] = []
        for chunk in chunks:
            choices = chunk.get("choices")
            if type(choices) is list and self.open_call is None:
                if not choices:  # the usage chunk
                    continue
                choice = choices[0]
                if len(choices) == 1 and type(choice) is dict and choice.get("index", 0) == 0:
                    delta = choice.get("delta")
                    if type(delta) is dict and not delta.get("tool_calls"):
                        content = delta.get("content")
                        if (content is None or type(content) is str) and self._plain(
                            content, choice.get("finish_reason"), out
                        ):
                            continue
            # Nothing the fast path takes (and so nothing `text_only` would): the dict events.
            out.extend(sse(e) for e in self.feed(chunk))
        return b"".join(out)

    def feed_payloads(self, payloads: list[bytes]) -> bytes:
        """`feed_chunks` of the parsed payloads (raw chat chunks from an OpenAI-compatible upstream), the
        same bytes: the fast path's fields are decoded (`gateway/chunks.py`), not the whole chunk."""
        out: list[bytes] = []
        for payload in payloads:
            chunk = decode_chunk(payload)
            if chunk is not None and chunk.choices is not None and self.open_call is None:
                choices = chunk.choices
                if not choices:
                    continue
                choice = choices[0]
                delta = choice.delta
                if len(choices) == 1 and choice.index == 0 and (delta is None or not delta.tool_calls):
                    content = delta.content if delta is not None else None
                    if self._plain(content, choice.finish_reason, out):
                        continue
            out.extend(sse(e) for e in self.feed(loads_event(payload, "upstream")))
        return b"".join(out)

    def _plain(self, content: str | None, finish: Any, out: list[bytes]) -> bool:
        """The fast path's take of a one-choice chunk without tool calls: a text delta event for text (into
        `out`), the finish_reason of a chunk without text; False for text and a finish_reason together
        (that one takes `feed`)."""
        if not content:
            if finish:
                self.finish_reason = finish
            return True
        if finish:
            return False
        out.append(self._text_wire(content))
        return True

    def _text_wire(self, content: str) -> bytes:
        """The text delta event of a chunk that only adds text, after the message's opening events if
        it opens the message."""
        head = self._open_wire() if self._delta_mid is None else b""
        self.text.append(content)
        self.seq += 1
        return b"%s%s%d%s%s}\n\n" % (head, _DELTA_HEAD, self.seq - 1, self._delta_mid, orjson.dumps(content))

    def _open_wire(self) -> bytes:
        """`_text`'s opening events (output_item.added, content_part.added) as SSE, for no open item."""
        self._open_message()
        seq = self.seq
        self.seq += 2
        return b'%s%d,"output_index":%d,"item":%s}\n\n%s%d%s,"part":%s""%s}\n\n' % (
            _ADDED_HEAD,
            seq,
            len(self.items) - 1,
            orjson.dumps(self.message),
            _PART_ADDED_HEAD,
            seq + 1,
            self._at,
            _PART[0],
            _PART[1],
        )

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the Responses API has one answer per response
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.extend(self._text(str(delta["content"])))
            for call in delta.get("tool_calls") or ():
                out.extend(self._call(call))
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    # -- text -----------------------------------------------------------------------------------------

    def _text(self, delta: str) -> list[dict[str, Any]]:
        out = self._close_call()
        if self.message is None:
            self._open_message()
            assert self.message is not None
            out.append(
                self._event(
                    "response.output_item.added", output_index=len(self.items) - 1, item=dict(self.message)
                )
            )
            out.append(self._part_event("response.content_part.added", text_part("")))
        self.text.append(delta)
        out.append(self._text_event("response.output_text.delta", delta=delta))
        return out

    def _open_message(self) -> None:
        """A new message item (in progress, no content yet), last of the output."""
        self.message = message_item("", status="in_progress")
        self.message["content"] = []
        self.text = []
        index = self._append(self.message)
        # The fields `_text_event` and `_part_event` put after sequence_number, in their order (same bytes).
        self._id_json = orjson.dumps(self.message["id"])
        self._at = b',"item_id":%s,"output_index":%d,"content_index":0' % (self._id_json, index)
        self._delta_mid = self._at + b',"logprobs":[],"delta":'

    def _added(self, item: dict[str, Any]) -> dict[str, Any]:
        index = self._append(item)
        return self._event("response.output_item.added", output_index=index, item=dict(item))

    def _append(self, item: dict[str, Any]) -> int:
        """Add `item` last to the output; its output_index."""
        index = len(self.items)
        self.items.append(item)
        self._where[id(item)] = index
        return index

    def _index(self, item: dict[str, Any]) -> int:
        return self._where[id(item)]

    def _part_event(self, kind: str, part: dict[str, Any]) -> dict[str, Any]:
        assert self.message is not None
        return self._event(
            kind,
            item_id=self.message["id"],
            output_index=self._index(self.message),
            content_index=0,
            part=part,
        )

    def _text_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        assert self.message is not None
        return self._event(
            kind,
            item_id=self.message["id"],
            output_index=self._index(self.message),
            content_index=0,
            logprobs=[],
            **fields,
        )

    def _close_message_wire(self) -> bytes:
        """`sse()` of `_close_message()`'s events, the text encoded once for all three (the message's
        fields in `message_item`'s order)."""
        message = self.message
        if message is None:
            return b""
        text = "".join(self.text)
        encoded = orjson.dumps(text)
        part = b"%s%s%s" % (_PART[0], encoded, _PART[1])
        seq = self.seq
        self.seq += 3
        out = _CLOSE_MESSAGE % (
            _TEXT_DONE_HEAD,
            seq,
            self._at,
            encoded,
            _PART_DONE_HEAD,
            seq + 1,
            self._at,
            part,
            _ITEM_DONE_HEAD,
            seq + 2,
            self._index(message),
            self._id_json,
            part,
        )
        message["content"] = [text_part(text)]
        message["status"] = "completed"
        self.message = None
        self._delta_mid = None
        return out

    def _close_message(self) -> list[dict[str, Any]]:
        if self.message is None:
            return []
        text = "".join(self.text)
        out = [
            self._text_event("response.output_text.done", text=text),
            self._part_event("response.content_part.done", text_part(text)),
        ]
        self.message["content"] = [text_part(text)]
        self.message["status"] = "completed"
        out.append(self._item_done(self.message))
        self.message = None
        self._delta_mid = None
        return out

    def _item_done(self, item: dict[str, Any]) -> dict[str, Any]:
        return self._event("response.output_item.done", output_index=self._index(item), item=dict(item))

    # -- function calls -------------------------------------------------------------------------------

    def _call(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        index = int(call.get("index") or 0)
        fn = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            out.extend(self._close_message())
            out.extend(self._close_call())
            item = call_item(
                str(call.get("id") or f"call_{index}"), fn.get("name") or "", "", status="in_progress"
            )
            self.calls[index] = item
            self.open_call = item
            out.append(self._added(item))
        elif fn.get("name") and not item["name"]:
            item["name"] = fn["name"]
        args = fn.get("arguments")
        if args:
            item["arguments"] += args
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    delta=args,
                )
            )
        return out

    def _close_call(self) -> list[dict[str, Any]]:
        item = self.open_call
        if item is None:
            return []
        self.open_call = None
        item["status"] = "completed"
        done = self._event(
            "response.function_call_arguments.done",
            item_id=item["id"],
            name=item["name"],
            output_index=self._index(item),
            arguments=item["arguments"],
        )
        return [done, self._item_done(item)]

    # -- the end --------------------------------------------------------------------------------------

    def finish(self, usage: Usage) -> list[dict[str, Any]]:
        """Close what is open and send the final response, with the upstream's usage."""
        out = [*self._close_message(), *self._close_call()]
        self.response["output"] = [dict(i) for i in self.items]
        complete(self.response, self.finish_reason, usage)
        kind = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        out.append(self._snapshot(kind))
        self.done = True
        return out

    def finish_wire(self, usage: Usage) -> tuple[bytes, bytes]:
        """`finish(usage)` as SSE, and the final response's JSON: encoded once, for the wire and the store.
        The output is the items themselves, not copies: nothing changes them once the stream is done."""
        closing = self._close_message_wire()
        if self.open_call is not None:
            closing += b"".join(sse(e) for e in self._close_call())
        self.response["output"] = self.items
        complete(self.response, self.finish_reason, usage)
        kind = b"response.completed" if self.response["status"] == "completed" else b"response.incomplete"
        response: bytes = orjson.dumps(self.response)
        final = self._snapshot_wire(kind, response)
        self.done = True
        return closing + final, response

    def fail(self, code: str, message: str, usage: Usage | None = None) -> list[dict[str, Any]]:
        """The stream broke after it began: the response as far as it got, `failed`, with the reason."""
        self.response["output"] = [dict(i) for i in self.items]
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        if usage is not None:
            self.response["usage"] = complete({}, None, usage)["usage"]
        self.done = True
        return [self._snapshot("response.failed")]
