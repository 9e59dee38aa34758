"""Who is acting: recorded with every manual change (holds, adjustments, recalls)."""

from __future__ import annotations

from fastapi import Request

ANONYMOUS = "anonymous"


def actor_of(request: Request) -> str:
    """The authenticated principal when there is one, else the declared `X-Actor` header."""
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return str(principal)
    declared = request.headers.get("x-actor", "").strip()
    return declared[:100] or ANONYMOUS
