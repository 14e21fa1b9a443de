"""JSON as Podium writes it: strict JSON for what the trainer writes, and the canonical form
that fingerprints hash.

Strict: a value that does not exist (NaN, ±inf) is written as null, never as ``NaN``, which no
other JSON parser (nor PostgreSQL) reads. orjson writes it so, and NumPy scalars and arrays as
numbers. Every JSON the trainer writes (result line, metadata.json, metrics.jsonl) goes
through :func:`dumps`.

Canonical: sorted keys, no spaces, UTF-8 as is, dates as ISO strings, and no NaN at all (a
fingerprint of a value that does not exist is refused, not hashed as null), so the same content
gives the same bytes, and the same SHA-256, wherever it is hashed: the dataset fingerprint
here, the version fingerprint in the registry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import orjson

_STRICT = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(value: Any, *, indent: bool = False, sort_keys: bool = False,
          default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as strict JSON (``indent``: two spaces a level; ``default``: what to write
    for a value JSON has no type for)."""
    option = (_STRICT | (orjson.OPT_INDENT_2 if indent else 0)
              | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    return orjson.dumps(value, default=default, option=option).decode()


def finite_or_null(value: Any) -> Any:
    """``value`` as plain JSON data: every non-finite float (at any depth) None, NumPy scalars
    Python numbers, tuples lists, dates ISO strings."""
    return orjson.loads(orjson.dumps(value, option=_STRICT))


def canonical_json(payload: Any) -> str:
    """Sorted keys, no spaces, no NaN: the same bytes for the same content everywhere."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=False, default=_canonical_default)


def _canonical_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON-serialisable in a fingerprint: {type(value).__name__}")
