"""Go-template rendering (Helm flavour) for exactly the subset the generated chart uses; anything else fails.

No helm binary exists on these machines, so the chart is rendered here: text and `{{ … }}` actions with
`{{-`/`-}}` whitespace trimming; `if`/`else`/`end`; pipelines; `.Values.a.b` fields; string, integer and
boolean literals; parenthesised sub-expressions; the functions and, or, not, eq, ne, gt, int, quote, toJson
and fail (which raises `ChartFail`, as `helm template` exits with the message).
"""

from __future__ import annotations

import json
import re
from typing import Any

ACTION = re.compile(r'\{\{(-?)((?:"(?:[^"\\]|\\.)*"|[^"}])*?)(-?)\}\}', re.S)
TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(\()|(\))|(\|)|([^\s()|]+))')


class ChartFail(Exception):
    """`fail "message"` in a template."""


def _truthy(v: Any) -> bool:
    return not (v is None or v is False or v == 0 or v == "" or v == [] or v == {})


def _quote(v: Any) -> str:
    return json.dumps(str(v) if not isinstance(v, str) else v)


def _fail(msg: str) -> Any:
    raise ChartFail(msg)


FUNCS: dict[str, Any] = {
    "and": lambda *a: next((x for x in a if not _truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truthy(x)), a[-1]),
    "not": lambda a: not _truthy(a),
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "int": int,
    "quote": _quote,
    "toJson": lambda v: json.dumps(v, separators=(",", ":")),
    "fail": _fail,
}


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        m = TOKEN.match(expr, pos)
        assert m and m.end() > pos, f"cannot parse {expr!r}"
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


class _Expr:
    def __init__(self, tokens: list[str], values: dict[str, Any]) -> None:
        self.t, self.i, self.values = tokens, 0, values

    def pipeline(self) -> Any:
        result = self.command(None, piped=False)
        while self.i < len(self.t) and self.t[self.i] == "|":
            self.i += 1
            result = self.command(result, piped=True)
        return result

    def command(self, prev: Any, piped: bool) -> Any:
        head = self.t[self.i]
        if head in FUNCS:
            self.i += 1
            args = []
            while self.i < len(self.t) and self.t[self.i] not in ("|", ")"):
                args.append(self.operand())
            return FUNCS[head](*args, *([prev] if piped else []))
        assert not piped, f"cannot pipe into {head!r}"
        return self.operand()

    def operand(self) -> Any:
        tok = self.t[self.i]
        self.i += 1
        if tok == "(":
            value = self.pipeline()
            assert self.t[self.i] == ")", "unbalanced parenthesis"
            self.i += 1
            return value
        if tok.startswith('"'):
            return json.loads(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        assert tok.startswith(".Values."), f"unsupported operand {tok!r}"
        node: Any = self.values
        for part in tok[len(".Values.") :].split("."):
            assert isinstance(node, dict) and part in node, f"no value {tok}"
            node = node[part]
        return node


def _eval(expr: str, values: dict[str, Any]) -> Any:
    parser = _Expr(_tokens(expr), values)
    value = parser.pipeline()
    assert parser.i == len(parser.t), f"trailing tokens in {expr!r}"
    return value


def _parse(template: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", body)] with trim markers applied to the neighbouring text."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in ACTION.finditer(template):
        text = template[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = template[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    return parts


def _run(parts: list[tuple[str, str]], i: int, values: dict[str, Any], out: list[str], emit: bool) -> int:
    """Render from parts[i] until a matching else/end (returned index points at it) or the end."""
    while i < len(parts):
        kind, body = parts[i]
        if kind == "text":
            if emit:
                out.append(body)
            i += 1
        elif body.startswith("if "):
            cond = emit and _truthy(_eval(body[3:], values))
            i = _run(parts, i + 1, values, out, cond)
            if parts[i][1] == "else":
                i = _run(parts, i + 1, values, out, emit and not cond)
            assert parts[i][1] == "end", "if without end"
            i += 1
        elif body in ("else", "end"):
            return i
        else:
            if emit:
                value = _eval(body, values)
                out.append("" if value is None else str(value))
            i += 1
    return i


def render(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    parts = _parse(template)
    end = _run(parts, 0, values, out, True)
    assert end == len(parts), f"unexpected {parts[end][1]!r}"
    return "".join(out)
