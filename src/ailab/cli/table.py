"""Plain-text tables for the CLI (no dependency needed for this)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line]
    for row in cells:
        out.append(
            "  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths, strict=True))
        )
    return "\n".join(x.rstrip() for x in out)


def _numeric(v: str) -> bool:
    return v.replace(".", "", 1).replace("-", "", 1).isdigit()
