"""A Responses API request (its normalised items) as a chat completions request, for providers that speak
only chat: instructions → a system message, function_call items → an assistant message's tool_calls,
function_call_output → tool messages, function tools, tool_choice and text.format → response_format.

What chat cannot express (hosted tools, file inputs, item references) is refused with a 400 naming the
parameter, never silently dropped.
"""

from __future__ import annotations

from typing import Any

from ailab.gateway.errors import GatewayError, quote

# Request fields with the same name and meaning in chat completions.
SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "prompt_cache_key", "service_tier")
TEXTUAL = ("input_text", "output_text", "refusal")  # parts a chat message's string content holds


def unsupported(param: str, what: str) -> GatewayError:
    return GatewayError(
        400,
        f"{param}: {what} is not supported by this model's provider (the gateway translates the "
        "Responses API to chat completions for it)",
        param=param,
        code="unsupported_parameter",
    )


def to_chat(
    body: dict[str, Any], history: list[dict[str, Any]], items: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chat body for `history` (earlier turns, from previous_response_id) followed by `items`."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        messages.append({"role": "system", "content": instructions})
    n_history = len(history)
    for i, item in enumerate([*history, *items]):
        where = "previous_response_id" if i < n_history else f"input[{i - n_history}]"
        _add(messages, item, where)
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for key in SAME:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("safety_identifier") and "user" not in chat:
        chat["user"] = body["safety_identifier"]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort:
        chat["reasoning_effort"] = effort
    if body.get("tools"):
        chat["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = (body.get("text") or {}).get("format")
    if fmt and fmt.get("type") != "text":
        chat["response_format"] = _response_format(fmt)
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _add(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item["type"]
    if kind == "message":
        messages.append(_message(item, where))
    elif kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        last = messages[-1] if messages else None
        # Consecutive calls (and the text before them) are one assistant turn in chat.
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item["output"]
        if isinstance(output, list):
            output = "".join(p.get("text", "") for p in output if isinstance(p, dict))
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    elif kind == "item_reference":
        raise unsupported(f"{where}.type", "'item_reference'")
    # reasoning items carry the provider's own hidden state: other providers cannot read them.


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = "system" if item["role"] == "developer" else item["role"]
    parts = item["content"]
    if len(parts) == 1 and parts[0]["type"] in TEXTUAL:  # the common case, said without generators
        return {"role": role, "content": parts[0].get("text") or parts[0].get("refusal") or ""}
    if all(p["type"] in TEXTUAL for p in parts):
        text = "".join(p.get("text") or p.get("refusal") or "" for p in parts)
        return {"role": role, "content": text}
    return {"role": role, "content": [_part(p, f"{where}.content[{j}]") for j, p in enumerate(parts)]}


def _part(part: dict[str, Any], where: str) -> dict[str, Any]:
    kind = part["type"]
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise unsupported(f"{where}.file_id", "an image by file_id")
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise unsupported(f"{where}.type", quote(kind))


def _tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    if tool["type"] != "function":
        raise unsupported(f"{where}.type", f"the hosted tool {quote(tool['type'])}")
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("strict") is not None:
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise unsupported("tool_choice", f"the tool choice {quote(choice)}")


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
    for key in ("description", "strict"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}
