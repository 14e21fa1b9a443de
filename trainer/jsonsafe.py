"""Strict JSON: a value that does not exist (NaN, ±inf) is written as null, never as ``NaN``.

Python's ``json`` writes ``NaN`` by default, which no other JSON parser (nor PostgreSQL) reads.
Every JSON the trainer writes (result line, metadata.json, metrics.jsonl) goes through here.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(finite_or_null(value), allow_nan=False, **kwargs)
