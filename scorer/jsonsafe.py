"""Numbers made safe for JSON: NaN and ±inf become None (orjson writes them as null)."""

from __future__ import annotations

import math
from typing import Any

import orjson

_PLAIN = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None for None, NaN and ±inf."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats (at any depth) None, NumPy scalars and
    enums their Python values, keys strings, tuples lists, dates ISO strings."""
    return orjson.loads(orjson.dumps(value, option=_PLAIN))
