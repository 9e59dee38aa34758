"""Reading PostgreSQL's plans in tests: what `EXPLAIN (FORMAT JSON)` says a statement reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plan node and every node below it (`explained["Plan"]` of one statement)."""
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)
