import datetime as dt
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.errors import InvalidInput
from registry.ids import (
    build_version_id,
    canonical_json,
    fingerprint,
    parse_version_id,
    validate_slug,
    validate_version_id,
)

labels = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,47}\Z").filter(lambda s: ".." not in s)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(9999, 12, 31))
digests = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(labels, dates, digests)
def test_parse_inverts_build(label: str, cutoff: dt.date, digest: str) -> None:
    version_id = build_version_id(label, cutoff, digest)
    parsed = parse_version_id(version_id)
    assert (parsed.label, parsed.train_cutoff, parsed.fp) == (label, cutoff, digest[:8])
    assert str(parsed) == version_id


@given(st.text(max_size=120))
def test_no_valid_id_can_name_a_path_or_hide_characters(candidate: str) -> None:
    try:
        validate_version_id(candidate)
    except InvalidInput as exc:
        assert exc.code == "invalid_version_id"
        return
    assert "/" not in candidate and "\\" not in candidate and ".." not in candidate
    assert not any(ch.isspace() or not ch.isprintable() for ch in candidate)
    assert set(candidate) <= set(string.ascii_lowercase + string.digits + "._-")


@pytest.mark.parametrize("bad", [
    "../etc-20250630-3fa2c1de", "a/b-20250630-3fa2c1de", "v1..2-20250630-3fa2c1de",
    "v1-20250230-3fa2c1de", "v1-20250630-3FA2C1DE", "V1-20250630-3fa2c1de",
    "v1-2025063-3fa2c1de", "v1 -20250630-3fa2c1de", "v1-20250630-3fa2c1de\n",
    "-v1-20250630-3fa2c1de", "v1-20250630-3fa2c1d", "x" * 49 + "-20250630-3fa2c1de", "",
])
def test_bad_ids_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid version id") as info:
        parse_version_id(bad)
    assert info.value.code == "invalid_version_id"


def test_example_from_the_design() -> None:
    parsed = parse_version_id("v3.1-resmom-20250630-3fa2c1de")
    assert parsed.label == "v3.1-resmom"
    assert parsed.train_cutoff == dt.date(2025, 6, 30)


def test_slug_rules() -> None:
    assert validate_slug("equities-daily", what="track") == "equities-daily"
    with pytest.raises(InvalidInput, match="invalid track"):
        validate_slug("..", what="track")


def test_fingerprint_is_canonical_and_sensitive() -> None:
    a = fingerprint({"b": 1, "a": [1, 2]}, dataset_fingerprint="d1", code_version="1")
    b = fingerprint({"a": [1, 2], "b": 1}, dataset_fingerprint="d1", code_version="1")
    assert a == b and len(a) == 64
    assert a != fingerprint({"a": [1, 2], "b": 2}, dataset_fingerprint="d1", code_version="1")
    assert a != fingerprint({"a": [1, 2], "b": 1}, dataset_fingerprint="d2", code_version="1")
    assert a != fingerprint({"a": [1, 2], "b": 1}, dataset_fingerprint="d1", code_version="2")
    assert canonical_json({"b": 1, "a": dt.date(2025, 1, 2)}) == '{"a":"2025-01-02","b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
