"""How a pydantic validation error reads in a message (the API's 422 detail, the zoo's specs)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from registry.errors import describe_invalid_fields


class _Window(BaseModel):
    days: int
    nested: dict[str, int]


def test_each_invalid_field_is_named_by_its_dotted_path_with_pydantic_s_message() -> None:
    with pytest.raises(ValidationError) as info:
        _Window.model_validate({"days": "many", "nested": {"a": "x"}})
    assert describe_invalid_fields(info.value.errors()) == (
        "days: Input should be a valid integer, unable to parse string as an integer; "
        "nested.a: Input should be a valid integer, unable to parse string as an integer")


def test_no_errors_is_an_empty_description() -> None:
    assert describe_invalid_fields([]) == ""
