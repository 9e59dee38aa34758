"""Building one typed record from others that name the same fields, without copying them out
field by field (where a copy by hand could drop or cross a field unseen)."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

R = TypeVar("R")
_ABSENT = object()


class Row(Protocol):
    """A query row (or a mapping) read by column name."""

    def __getitem__(self, name: str, /) -> Any: ...


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(kind: type[Any]) -> tuple[str, ...]:
    # Read once per type: reading them took 3.8 us a call, the whole copy 14.7 us (timeit).
    names = _FIELD_NAMES.get(kind)
    if names is None:
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names = tuple(kind.model_fields)
        else:
            names = tuple(field.name for field in dataclasses.fields(kind))
        _FIELD_NAMES[kind] = names
    return names


def built_from(kind: type[R], *sources: object, **given: Any) -> R:
    """A `kind` (a dataclass or pydantic model) whose fields are `given`, or else taken from
    the first of `sources` with an attribute of that name. A field none of them names keeps
    its default, or the constructor refuses it: nothing is left out silently."""
    key = (kind, tuple(map(type, sources)), frozenset(given))
    plan = _PLANS[key] if key in _PLANS else _plan(*key)
    if plan is None:
        for name in _field_names(kind):
            if name not in given:
                _take(given, name, sources)
    else:
        for name, index in plan:
            given[name] = getattr(sources[index], name)
    return kind(**given)


def _take(values: dict[str, Any], name: str, sources: tuple[object, ...]) -> None:
    for source in sources:
        value = getattr(source, name, _ABSENT)
        if value is not _ABSENT:
            values[name] = value
            return


# Asking a pydantic model for an attribute it lacks raises inside `BaseModel.__getattr__`:
# about 10 % of the recall service's CPU in an order burst went to such misses (py-spy during
# `python -m bench.pipeline`). Dataclasses and pydantic models declare their attributes on the
# type, so which source gives each field is worked out once per combination of types, and no
# lookup misses.
_Plan = tuple[tuple[str, int], ...]
_PLANS: dict[tuple[type[Any], tuple[type[Any], ...], frozenset[str]], _Plan | None] = {}


def _plan(
    kind: type[Any], source_types: tuple[type[Any], ...], given: frozenset[str]
) -> _Plan | None:
    """Each field not given, with the index of the first source type declaring it; None when a
    source's type does not declare all its attributes (any other object)."""
    plan: _Plan | None = None
    if all(_declares_all(source_type) for source_type in source_types):
        plan = tuple(
            (name, index)
            for name in _field_names(kind)
            if name not in given
            for index in _first_declaring(source_types, name)
        )
    _PLANS[(kind, source_types, given)] = plan
    return plan


def _first_declaring(source_types: tuple[type[Any], ...], name: str) -> list[int]:
    for index, source_type in enumerate(source_types):
        if name in _field_names(source_type) or hasattr(source_type, name):
            return [index]
    return []


def _declares_all(source_type: type[Any]) -> bool:
    """Whether every attribute an instance has is a field or an attribute of its type."""
    if issubclass(source_type, BaseModel):
        return source_type.model_config.get("extra") != "allow"
    return dataclasses.is_dataclass(source_type)


def built_from_row(kind: type[R], row: Row, **given: Any) -> R:
    """A `kind` whose fields are `given`, or else the row's columns of the same name: the
    columns a wider row (a join) holds beyond the fields are left out; a missing one fails."""
    values = {name: row[name] for name in _field_names(kind) if name not in given}
    return kind(**values, **given)
