"""Plain-text tables for the CLI (no dependency needed for this), and the cell formats they share.

Tables are for people: names instead of ids, UTC dates instead of epoch milliseconds, fixed-point dollars.
`--format json|csv` bypass all of this and keep the raw values (ids, epoch ms, exact amounts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

NONE = "—"  # an unknown value (e.g. the cost of an unpriced model), never confused with zero
_MAX_DECIMALS = 12  # the ledger counts pico-dollars


def render(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    totals: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Columns left-aligned, numbers and amounts right-aligned; `totals` is a last row under a rule."""
    body = [[cell(r.get(c)) for c in columns] for r in rows]
    foot = [cell(totals.get(c)) for c in columns] if totals is not None else None
    titles = [(headers or {}).get(c, c.replace("_", " ")).upper() for c in columns]
    every = [*body, *([foot] if foot else [])]
    widths = [max([len(t), *(len(row[i]) for row in every)]) for i, t in enumerate(titles)]
    out = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True))]
    out.extend(_line(row, widths) for row in body)
    if foot is not None:
        out.append("  ".join("-" * w for w in widths))
        out.append(_line(foot, widths))
    return "\n".join(x.rstrip() for x in out)


def _line(row: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths, strict=True))


def cell(v: Any) -> str:
    """One value as a person reads it: no `None`, no Python list reprs."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list | tuple | set | frozenset):
        return ", ".join(cell(x) for x in v)
    return str(v)


def _numeric(v: str) -> bool:
    bare = v.split(" ", 1)[0].lstrip("$").replace(",", "")
    return v == NONE or bare.replace(".", "", 1).replace("-", "", 1).isdigit()


def when(ms: int | None) -> str:
    """Epoch milliseconds → `2026-12-02 01:23` (UTC); nothing for no date."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def decimals_for(amounts: Iterable[Decimal | str | None]) -> int:
    """One number of decimals for a whole money column: cents at least, and enough for the smallest
    non-zero amount to show two significant digits (`$0.0000062`, not `$0.00` or `6.15E-6`)."""
    places = 2
    for a in amounts:
        if a is None:
            continue
        d = Decimal(a)
        if d != 0:
            places = max(places, -d.adjusted() + 1)
    return min(places, _MAX_DECIMALS)


def usd(amount: Decimal | str | None, places: int = 2) -> str:
    """Fixed-point dollars: `$0.000006`; `—` when the amount is unknown."""
    if amount is None:
        return NONE
    return f"${Decimal(amount):,.{places}f}"
