"""Submitted predictions' bodies: JSON ``{"scores": {asset: score, ...}}`` or a Parquet file with
columns ``asset`` (string) and ``score`` (number). Both become ``(assets, scores)`` with every
asset kept, duplicates included, so that the checks that follow see what was sent."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.errors import InvalidInput, UnsupportedMediaType

JSON_TYPES = ("application/json",)
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet",
                 "application/octet-stream")


class _Pairs(list):
    """A JSON object as the list of its (key, value) pairs: duplicate keys stay visible."""


def parse_predictions(body: bytes, content_type: str | None) -> tuple[list[str], np.ndarray]:
    media = (content_type or "").split(";")[0].strip().lower()
    if media in JSON_TYPES:
        return _from_json(body)
    if media in PARQUET_TYPES:
        return _from_parquet(body)
    raise UnsupportedMediaType(
        f"send predictions as {JSON_TYPES[0]} or {PARQUET_TYPES[0]}, not {media or 'no type'}")


def _from_json(body: bytes) -> tuple[list[str], np.ndarray]:
    try:
        payload = json.loads(body, object_pairs_hook=_Pairs, parse_constant=float)
    except (ValueError, RecursionError):
        raise InvalidInput("the body is not valid JSON; expected {\"scores\": {asset: score}}",
                           code="invalid_json") from None
    if not isinstance(payload, _Pairs) or [key for key, _ in payload] != ["scores"] \
            or not isinstance(payload[0][1], _Pairs):
        raise InvalidInput("expected a JSON object with one key, \"scores\", mapping each asset "
                           "to its score", code="invalid_predictions")
    pairs: list[tuple[str, Any]] = payload[0][1]
    bad = [asset for asset, score in pairs
           if isinstance(score, bool) or not isinstance(score, int | float)]
    if bad:
        raise InvalidInput(f"scores must be numbers; not for {', '.join(map(repr, bad[:5]))}",
                           code="invalid_score")
    try:
        scores = np.array([float(score) for _, score in pairs], dtype=np.float64)
    except OverflowError:  # an integer too large for a float
        raise InvalidInput("a score is too large to be a number", code="non_finite_score") \
            from None
    return [asset for asset, _ in pairs], scores


def _from_parquet(body: bytes) -> tuple[list[str], np.ndarray]:
    try:
        table = pq.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError, ValueError):
        raise InvalidInput("the body is not a readable Parquet file", code="invalid_parquet") \
            from None
    names = table.column_names
    if "asset" not in names or "score" not in names:
        raise InvalidInput(f"a Parquet body needs columns asset and score; it has "
                           f"{', '.join(names) or 'none'}", code="invalid_parquet")
    assets, scores = table.column("asset"), table.column("score")
    if pa.types.is_dictionary(assets.type):
        assets = assets.cast(assets.type.value_type)
    if not (pa.types.is_string(assets.type) or pa.types.is_large_string(assets.type)):
        raise InvalidInput(f"column asset must be strings, not {assets.type}",
                           code="invalid_parquet")
    if not (pa.types.is_integer(scores.type) or pa.types.is_floating(scores.type)):
        raise InvalidInput(f"column score must be numbers, not {scores.type}",
                           code="invalid_score")
    if assets.null_count:
        raise InvalidInput(f"{assets.null_count} row(s) have no asset", code="invalid_asset")
    values = pc.fill_null(scores.cast(pa.float64()), float("nan"))  # a null is no score
    return assets.to_pylist(), values.to_numpy()
