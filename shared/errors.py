"""Refusals by a rule, without HTTP: a domain exception carries a stable code and a kind, and
the edge (`shared/runtime/http.py`) alone maps the kind to a status."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What sort of refusal an error is; the HTTP edge gives each one status."""

    INVALID = "invalid"  # the request breaks a rule of its own content
    NOT_FOUND = "not_found"  # it names something that does not exist
    CONFLICT = "conflict"  # it clashes with the current state (a held lot, a shipped order)
    UNAVAILABLE = "unavailable"  # it cannot be served now; the same request may succeed later


class DomainError(Exception):
    """A rule refused what was asked. `code` is stable for clients (`lot_held`); the message
    names what was wrong, for people."""

    kind: ErrorKind = ErrorKind.CONFLICT

    def __init__(self, code: str, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if kind is not None:
            self.kind = kind


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class Invalid(DomainError):
    kind = ErrorKind.INVALID


class Conflict(DomainError):
    kind = ErrorKind.CONFLICT


class Unavailable(DomainError):
    kind = ErrorKind.UNAVAILABLE
