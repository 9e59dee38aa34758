"""The relay's statements against a real PostgreSQL whose statistics are out of date, as they
always are on the outbox's queue table: autovacuum analyzed it when it held a few rows (or
none, just drained), and a recall then queued fifty thousand notices. Planned for a few rows,
marking the published ids was a sequential scan testing every pending id against every
published one, seconds a round (the notices' stall); the relay's session never plans one.
Planned once for all parameters (PostgreSQL's generic plan, chosen after five runs of a
prepared statement), a round joined every row it fetched with every row in its id range."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.outbox import RELAY_SESSION_SETTINGS, ROUND_STATEMENT
from tests.integration.outbox_rows import write_notices

BATCH = 2_000


@pytest_asyncio.fixture
async def backlog_unknown_to_statistics(database_url: str) -> AsyncIterator[str]:
    """Statistics taken with 200 rows pending in many pages; then 50,000 more queued."""
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS)])
    connection = await asyncpg.connect(database_url)
    try:
        await write_notices(connection, 20_000, queued=True)
        await connection.execute(
            "DELETE FROM outbox_pending WHERE id > (SELECT min(id) + 199 FROM outbox_pending)"
        )
        await connection.execute("ANALYZE outbox_pending; ANALYZE outbox")
        await write_notices(connection, 50_000, queued=True)
    finally:
        await connection.close()
    yield database_url


@pytest_asyncio.fixture
async def backlog_after_a_drained_queue_was_analyzed(database_url: str) -> AsyncIterator[str]:
    """Statistics taken when the relay had just published everything (no row pending, the
    pages still there); then 20,000 rows queued."""
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS)])
    connection = await asyncpg.connect(database_url)
    try:
        await write_notices(connection, 5_000, queued=True)
        await connection.execute("DELETE FROM outbox_pending")
        await connection.execute("ANALYZE outbox_pending; ANALYZE outbox")
        await write_notices(connection, 20_000, queued=True)
    finally:
        await connection.close()
    yield database_url


async def executed_round_plan(url: str, server_settings: dict[str, str]) -> str:
    """The plan a round that marks the first BATCH pending ids ran with (auto_explain, sent to
    this session), as the relay runs it: the same prepared statement, seven times."""
    connection = await asyncpg.connect(url, server_settings=server_settings)
    plans: list[str] = []
    connection.add_log_listener(lambda _, message: plans.append(message.message))
    try:
        await connection.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_analyze = on", "log_level = notice"):
            await connection.execute(f"SET auto_explain.{setting}")
        marked = [r["id"] for r in await connection.fetch(
            "SELECT id FROM outbox_pending ORDER BY id LIMIT $1", BATCH
        )]  # fmt: skip
        arguments: tuple[object, ...] = (marked, BATCH, None, None, None, None, [], [], [])
        statement = await connection.prepare(ROUND_STATEMENT)
        transaction = connection.transaction()
        await transaction.start()
        try:
            for _ in range(7):
                assert len(await statement.fetch(*arguments)) == BATCH
        finally:
            await transaction.rollback()
        return plans[-1]
    finally:
        await connection.close()


async def round_plan(url: str, server_settings: dict[str, str]) -> str:
    """The plan of a round that marks the first BATCH pending ids, planned for those ids (an
    EXPLAIN is planned with its parameters' values, never generic: `executed_round_plan` shows
    what the relay's own prepared statement runs with)."""
    connection = await asyncpg.connect(url, server_settings=server_settings)
    try:
        marked = [r["id"] for r in await connection.fetch(
            "SELECT id FROM outbox_pending ORDER BY id LIMIT $1", BATCH
        )]  # fmt: skip
        arguments: tuple[object, ...] = (marked, BATCH, None, None, None, None, [], [], [])
        explain = await connection.prepare("EXPLAIN " + ROUND_STATEMENT)
        transaction = connection.transaction()
        await transaction.start()
        try:
            for _ in range(6):
                plan = await explain.fetch(*arguments)
        finally:
            await transaction.rollback()
        return "\n".join(row[0] for row in plan)
    finally:
        await connection.close()


async def test_a_round_never_scans_the_queue_whole_when_statistics_are_stale(
    backlog_unknown_to_statistics: str,
) -> None:
    planned_as_is = await round_plan(backlog_unknown_to_statistics, {})
    assert "Seq Scan on outbox_pending" in planned_as_is  # the hazard, reproduced

    plan = await round_plan(backlog_unknown_to_statistics, RELAY_SESSION_SETTINGS)

    assert "Seq Scan" not in plan, plan


async def test_a_round_looks_at_each_row_once_however_it_is_planned(
    backlog_after_a_drained_queue_was_analyzed: str,
) -> None:
    for settings in (RELAY_SESSION_SETTINGS, {"plan_cache_mode": "force_generic_plan"}):
        plan = await executed_round_plan(backlog_after_a_drained_queue_was_analyzed, settings)

        removed = re.findall(r"Rows Removed by (?:Join )?Filter: (\d+)", plan)
        assert sum(int(rows) for rows in removed) <= BATCH, plan  # the ids marked, once
