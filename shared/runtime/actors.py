"""Who is acting: recorded with every manual change (holds, adjustments, shipments, recalls).

The actor is the authenticated principal (the API key's name, see shared/runtime/auth.py),
set on `request.state.principal` by the role check every route declares. Only with
`AUTH_MODE=disabled` does the caller name itself, with the `X-Actor` header.
"""

from __future__ import annotations

from fastapi import Request

ANONYMOUS = "anonymous"


def actor_of(request: Request) -> str:
    """The principal's name; `anonymous` where no role check ran (no route is like that)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return ANONYMOUS
    return str(getattr(principal, "name", principal))


def declared_actor(request: Request) -> str:
    """The `X-Actor` header (at most 100 characters), else `anonymous`: auth disabled only."""
    declared = request.headers.get("x-actor", "").strip()
    return declared[:100] or ANONYMOUS
