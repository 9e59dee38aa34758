"""A domain refusal carries a code and a kind, never an HTTP status; the edge maps each kind."""

from __future__ import annotations

from shared.errors import Conflict, DomainError, ErrorKind, Invalid, NotFound
from shared.runtime.http import STATUS_OF_KIND


def test_every_kind_of_refusal_has_one_http_status() -> None:
    assert set(STATUS_OF_KIND) == set(ErrorKind)
    assert STATUS_OF_KIND[ErrorKind.NOT_FOUND] == 404
    assert STATUS_OF_KIND[ErrorKind.CONFLICT] == 409
    assert STATUS_OF_KIND[ErrorKind.INVALID] == 422


def test_a_refusal_keeps_its_code_and_message_and_says_its_kind() -> None:
    refusal = NotFound("lot_not_found", "no lot L-1")

    assert (refusal.code, refusal.message, refusal.kind) == (
        "lot_not_found",
        "no lot L-1",
        "not_found",
    )
    assert Invalid("x", "y").kind is ErrorKind.INVALID
    assert Conflict("x", "y").kind is ErrorKind.CONFLICT
    assert DomainError("x", "y", kind=ErrorKind.UNAVAILABLE).kind is ErrorKind.UNAVAILABLE
