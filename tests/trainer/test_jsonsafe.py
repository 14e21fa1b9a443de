"""Strict JSON (what does not exist is null) and the one canonical form fingerprints hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import numpy as np
import pytest

from registry.ids import fingerprint
from trainer.dataset import dataset_fingerprint
from trainer.jsonsafe import canonical_json, dumps, finite_or_null


def _strict_loads(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_dumps_writes_what_does_not_exist_as_null() -> None:
    row = {"loss": float("nan"), "up": math.inf, "down": -math.inf, "steps": np.int64(3),
           "ic": np.float32(0.25), "kept": np.bool_(True), "losses": (1.5, np.float64("nan"))}
    assert _strict_loads(dumps(row)) == {"loss": None, "up": None, "down": None, "steps": 3,
                                         "ic": 0.25, "kept": True, "losses": [1.5, None]}


def test_dumps_indents_sorts_and_falls_back_to_default() -> None:
    text = dumps({"b": 1, "a": {"c": object}}, indent=True, sort_keys=True, default=str)
    assert text == '{\n  "a": {\n    "c": "<class \'object\'>"\n  },\n  "b": 1\n}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"a": object})


def test_finite_or_null_replaces_non_finite_numbers_at_any_depth() -> None:
    value = {"a": [1.0, float("nan"), {"b": np.float64("-inf")}], "c": "x", "d": None,
             "e": dt.date(2025, 6, 30)}
    assert finite_or_null(value) == {"a": [1.0, None, {"b": None}], "c": "x", "d": None,
                                     "e": "2025-06-30"}


def test_canonical_json_sorts_keys_without_spaces_and_keeps_unicode() -> None:
    payload = {"b": [1, 2], "a": {"name": "café", "day": dt.date(2025, 1, 2)}}
    assert canonical_json(payload) == '{"a":{"day":"2025-01-02","name":"café"},"b":[1,2]}'
    with pytest.raises(ValueError, match="Out of range float values"):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="not JSON-serialisable in a fingerprint: set"):
        canonical_json({"x": {1}})


def test_dataset_and_version_fingerprints_hash_the_same_canonical_bytes(tiny_market) -> None:
    """The registry's version fingerprint and the trainer's dataset fingerprint are SHA-256 of
    one canonical form, byte for byte (non-ASCII text and dates included)."""
    config = {"label": "é-model", "train_cutoff": dt.date(2025, 6, 30), "sizes": (8, 4)}
    payload = {"config": config, "dataset": "d" * 64, "code": "2"}
    digest = hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
    assert fingerprint(config, dataset_fingerprint="d" * 64, code_version="2") == digest
    market = tiny_market.model_dump(mode="json")
    assert dataset_fingerprint(tiny_market) == hashlib.sha256(
        canonical_json(market).encode("utf-8")).hexdigest()
