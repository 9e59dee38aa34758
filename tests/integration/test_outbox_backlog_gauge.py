"""The outbox backlog gauges read a bounded amount however much the outbox keeps. Published
rows stay in the outbox a while after the relay sends them; when a recall queued 100,000
notices at the end of a million such rows, joining the queue to the outbox to find its oldest
row walked every published row first: a second of PostgreSQL's time each sample, on every
replica, while the notices waited for the same cores."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from shared.runtime.lag import OUTBOX_QUERY
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from tests.integration.outbox_rows import write_notices
from tests.integration.plans import nodes

PUBLISHED = 60_000
PENDING = 5_000


@pytest_asyncio.fixture
async def queued_after_much_published(database_url: str) -> AsyncIterator[str]:
    """Statistics taken with every row published; then PENDING rows queued after them, the
    first of them an hour ago."""
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS)])
    connection = await asyncpg.connect(database_url)
    try:
        await write_notices(connection, PUBLISHED, queued=False)
        await connection.execute("ANALYZE outbox_pending; ANALYZE outbox")
        await write_notices(connection, PENDING, queued=True)
        await connection.execute(
            "UPDATE outbox SET created_at = now() - interval '1 hour'"
            " WHERE id = (SELECT min(id) FROM outbox_pending)"
        )
    finally:
        await connection.close()
    yield database_url


async def test_the_backlog_and_its_age_read_one_outbox_row(
    queued_after_much_published: str,
) -> None:
    connection = await asyncpg.connect(queued_after_much_published)
    try:
        row = await connection.fetchrow(OUTBOX_QUERY)
        [explained] = json.loads(
            await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {OUTBOX_QUERY}")
        )
    finally:
        await connection.close()
    assert row is not None
    assert row["backlog"] == PENDING
    assert 3600 <= row["oldest"] < 3660
    outbox_rows = [
        node["Actual Rows"] * node["Actual Loops"]
        for node in nodes(explained["Plan"])
        if node.get("Relation Name") == "outbox"
    ]
    assert outbox_rows, "the age is read from the outbox"
    assert sum(outbox_rows) <= 1, explained["Plan"]


async def test_an_empty_queue_has_no_backlog_and_no_age(database_url: str) -> None:
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS)])
    connection = await asyncpg.connect(database_url)
    try:
        await write_notices(connection, 10, queued=False)
        row = await connection.fetchrow(OUTBOX_QUERY)
    finally:
        await connection.close()
    assert row is not None
    assert (row["backlog"], row["oldest"]) == (0, 0)
