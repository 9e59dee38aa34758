"""Looking one thing up by its key: what a route answers when it is not there."""

from __future__ import annotations

from typing import TypeVar

from shared.errors import NotFound

T = TypeVar("T")


def found(value: T | None, what: str, key: object) -> T:
    """`value`, or NotFound `<what>_not_found` ("no <what> <key>") when the lookup had none."""
    if value is None:
        raise NotFound(f"{what}_not_found", f"no {what} {key}")
    return value
