"""Search filters, checked before they reach a store: `{field: value}` pairs only (no operators), a value
being a string, number, boolean or null. User input is echoed clipped, never whole."""

from __future__ import annotations

import re
from typing import Any

from ailab.text import quote_sized

FILTER_FIELD = re.compile(r"^[a-z_]{1,32}$")
SPECIAL = ("source_prefix", "document_id")
_SCALARS = (str, int, float, bool, type(None))


class FilterError(ValueError):
    """A malformed filter; the message names it."""


def check_filters(filters: object) -> dict[str, Any] | None:
    """The filters, or None for none; FilterError names the first malformed one."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise FilterError(f"filters: must be an object of field: value pairs, not {type(filters).__name__}")
    for key, value in filters.items():
        if key not in SPECIAL and not FILTER_FIELD.match(str(key)):
            raise FilterError(f"filters: unknown field {quote_sized(key)}")
        if not isinstance(value, _SCALARS):
            raise FilterError(
                f"filters.{key}: must be a string, number, boolean or null (an exact match; "
                f"operators such as {{'$gt': …}} are not supported), not {type(value).__name__}"
            )
        if key in SPECIAL and not isinstance(value, str):
            raise FilterError(f"filters.{key}: must be a string")
    return filters
