"""Numbers made safe for JSON: NaN and ±inf become None."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None for None, NaN and ±inf."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """Recursively replace non-finite floats by None; numpy scalars become Python ones."""
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite_or_none(value)
    return value
