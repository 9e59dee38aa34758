"""Outbox rows written straight into a test database: recall notices, queued for the relay or
already published (kept in the outbox, no longer in `outbox_pending`)."""

from __future__ import annotations

import asyncpg

_WRITE = """
WITH written AS (
    INSERT INTO outbox (topic, key, value, headers)
    SELECT 'recall-issued', 'R-1'::bytea, convert_to(repeat('n', 700), 'UTF8'), '[]'::jsonb
    FROM generate_series(1, $1) RETURNING id
)
INSERT INTO outbox_pending SELECT id FROM written WHERE $2
"""


async def write_notices(connection: asyncpg.Connection, rows: int, *, queued: bool) -> None:
    await connection.execute(_WRITE, rows, queued)
