"""Quantities less what was taken of them: the arithmetic that allocation, shipping and stock
share. Pure; what counts as taken is each service's rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar

ZERO = Decimal(0)


class Quantified(Protocol):
    """A dataclass with a quantity: a line, an allocation, a demand."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def quantity(self) -> Decimal: ...


Q = TypeVar("Q", bound=Quantified)


def less_taken(items: Iterable[Q], taken: Callable[[Q], Decimal]) -> list[Q]:
    """Each item less what `taken` says was taken of it, in order; an item with nothing left
    is gone."""
    left = []
    for item in items:
        rest = item.quantity - taken(item)
        if rest > 0:
            left.append(replace(item, quantity=rest))
    return left
