"""Reports and leaderboard rows become plain JSON data: what does not exist is None."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum

import numpy as np

from scorer.jsonsafe import finite_or_none, json_safe


class _Colour(StrEnum):
    RED = "red"


def test_json_safe_gives_plain_data_with_none_for_non_finite_numbers() -> None:
    value = {"mean": np.float64("nan"), "sharpe": float("inf"), "days": np.int64(12),
             "passed": np.bool_(False), "colour": _Colour.RED, 3: (1.5, -np.inf),
             "since": dt.date(2025, 6, 30), "nested": [{"x": np.float32(0.5)}]}
    safe = json_safe(value)
    assert safe == {"mean": None, "sharpe": None, "days": 12, "passed": False,
                    "colour": "red", "3": [1.5, None], "since": "2025-06-30",
                    "nested": [{"x": 0.5}]}
    assert type(safe["days"]) is int and type(safe["passed"]) is bool
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_finite_or_none_keeps_finite_numbers_only() -> None:
    assert finite_or_none(np.float32(2.0)) == 2.0
    assert finite_or_none(None) is None
    assert finite_or_none(float("nan")) is None and finite_or_none(-np.inf) is None
