"""built_from and built_from_row: fields from `given` first, then the first source naming them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import BaseModel, ValidationError

from shared.records import built_from, built_from_row


@dataclass(frozen=True)
class Pair:
    left: int
    right: str = "default"


class Model(BaseModel):
    left: int
    right: str


@dataclass(frozen=True)
class Wide:
    left: int
    right: str
    extra: float


def test_given_wins_then_the_first_source_naming_the_field() -> None:
    first = Wide(1, "first", 0.5)
    second = Pair(2, "second")
    assert built_from(Pair, second, first) == Pair(2, "second")
    assert built_from(Pair, first, second, right="given") == Pair(1, "given")
    assert built_from(Model, first, second) == Model(left=1, right="first")


def test_a_field_no_source_names_keeps_its_default_or_is_refused() -> None:
    class OnlyLeft:
        left = 7

    assert built_from(Pair, OnlyLeft()) == Pair(7)
    with pytest.raises(TypeError):
        built_from(Wide, OnlyLeft())
    with pytest.raises(ValidationError):
        built_from(Model, OnlyLeft())


def test_a_source_attribute_that_is_none_is_taken_not_skipped() -> None:
    class NoneLeft:
        left = None

    assert built_from(Pair, NoneLeft(), Pair(3)) == Pair(None, "default")  # type: ignore[arg-type]


def test_repeated_calls_per_type_give_the_same_results() -> None:
    for value in range(3):
        assert built_from(Pair, Wide(value, f"r{value}", 0.0)) == Pair(value, f"r{value}")
        assert built_from(Model, Wide(value, "m", 0.0)) == Model(left=value, right="m")


def test_a_model_source_lacking_a_field_gives_way_to_the_next_source() -> None:
    for value in range(2):
        model = Model(left=value, right="model")
        assert built_from(Wide, model, Wide(9, "wide", 2.5)) == Wide(value, "model", 2.5)


def test_properties_and_attributes_set_on_the_instance_are_sources_too() -> None:
    @dataclass(frozen=True)
    class WithProperty:
        left: int

        @property
        def right(self) -> str:
            return f"p{self.left}"

    class Plain:
        def __init__(self, left: int) -> None:
            self.left = left

    for value in range(2):
        assert built_from(Pair, WithProperty(value)) == Pair(value, f"p{value}")
        assert built_from(Pair, Plain(value)) == Pair(value)


def test_built_from_row_leaves_wider_columns_out_and_fails_on_a_missing_one() -> None:
    row = {"left": 4, "right": "row", "extra": 1.0}
    assert built_from_row(Pair, row) == Pair(4, "row")
    assert built_from_row(Model, row, right="given") == Model(left=4, right="given")
    with pytest.raises(KeyError):
        built_from_row(Wide, {"left": 1, "right": "x"})
