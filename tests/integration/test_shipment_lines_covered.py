"""Migration 0009 gives recall's lot index every column a trace and a notice read, against a
real PostgreSQL: on an upgrade, an export still reading on an older replica makes it give up
within seconds and try again later, instead of queuing every read behind it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.recall import db
from services.recall.app import MIGRATIONS
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from tests.integration.migrated import migrations_before
from tests.integration.plans import nodes

EVERY_MIGRATION = [("runtime", RUNTIME_MIGRATIONS), ("recall", MIGRATIONS)]
COVERING = "recall/0009_shipment_lines_cover_traces"


async def test_an_open_export_defers_the_upgrade_which_applies_once_it_ends(
    database_url: str, tmp_path: Path
) -> None:
    await migrate(database_url, migrations_before("recall", MIGRATIONS, "0009", scratch=tmp_path))
    export = await asyncpg.connect(database_url)
    try:
        download = export.transaction(isolation="repeatable_read", readonly=True)
        await download.start()
        await export.fetch("SELECT * FROM shipment_lines WHERE lot_id = $1", uuid.uuid4())
        started = time.monotonic()
        with pytest.raises(asyncpg.LockNotAvailableError):
            await migrate(database_url, EVERY_MIGRATION)
        assert time.monotonic() - started < 30
        await download.rollback()

        assert (await migrate(database_url, EVERY_MIGRATION))[0] == COVERING
    finally:
        await export.close()


async def test_a_trace_reads_a_lots_lines_from_the_index_alone(database_url: str) -> None:
    await migrate(database_url, EVERY_MIGRATION)
    connection = await asyncpg.connect(database_url)
    try:
        # An empty table would be read whole: the plan is asked of the index.
        await connection.execute("SET enable_seqscan = off; SET enable_bitmapscan = off")
        plan = await connection.fetchval(
            "EXPLAIN (FORMAT JSON) " + db._TRACE_SHIPMENT_LINES, [uuid.uuid4()], 10
        )
        [explained] = json.loads(plan)
        reads = {
            node["Relation Name"]: node["Node Type"]
            for node in nodes(explained["Plan"])
            if "Relation Name" in node
        }
        assert reads["shipment_lines"] == "Index Only Scan"
    finally:
        await connection.close()
