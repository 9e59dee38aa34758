"""Reports share a service's pool with its consumers, against a real PostgreSQL: they read in a
few slots of their own, so that downloads never take every connection, and one whose reader
stalls is ended by PostgreSQL and gives its slot back."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from lottrace.infra import TansuBroker, wait_until
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as create_recall
from shared.errors import Unavailable
from shared.runtime.database import Database, ReportLimits
from tests.conftest import PostgresServer
from tests.integration.service_apps import assert_error, quick_settings, running


async def test_reports_beyond_their_slots_are_refused_while_the_pool_serves_the_rest(
    postgres_server: PostgresServer,
) -> None:
    async with (
        postgres_server.fresh_database() as url,
        Database(
            url,
            source="/test",
            min_size=1,
            max_size=3,
            reports=ReportLimits(slots=1, wait_seconds=0.2),
        ) as database,
    ):
        async with database.snapshot() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(Unavailable) as refused:
                async with database.snapshot():
                    pass
            assert refused.value.code == "reports_busy"
            # What consumers and the API ask of the pool is still served.
            assert await database.fetchval("SELECT 2") == 2
        async with database.snapshot() as next_report:
            assert await next_report.fetchval("SELECT 3") == 3


async def _stall_until_ended(database: Database, watcher: asyncpg.Connection) -> None:
    """Read once in a report, then take nothing until PostgreSQL has ended its session, and
    read again."""
    async with database.snapshot() as stalled:
        pid = await stalled.fetchval("SELECT pg_backend_pid()")

        async def ended() -> bool:
            alive: int = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            )
            return alive == 0

        await wait_until(ended, timeout=10, what="stalled report ended")
        await stalled.fetchval("SELECT 1")


async def test_a_stalled_report_is_ended_by_postgres_and_gives_its_slot_back(
    postgres_server: PostgresServer,
) -> None:
    limits = ReportLimits(slots=1, wait_seconds=0.2, idle_seconds=0.3)
    async with (
        postgres_server.fresh_database() as url,
        Database(url, source="/test", min_size=1, max_size=3, reports=limits) as database,
    ):
        watcher = await asyncpg.connect(url)
        try:
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
                await _stall_until_ended(database, watcher)
        finally:
            await watcher.close()
        async with database.snapshot() as next_report:
            assert await next_report.fetchval("SELECT 1") == 1


async def test_an_export_beyond_the_slots_is_a_503_to_retry(
    postgres_server: PostgresServer, broker: TansuBroker
) -> None:
    async with postgres_server.fresh_database() as url:
        settings = quick_settings(
            RecallSettings, url, broker, db_report_slots=1, db_report_wait_seconds=0.1
        )
        app = create_recall(settings)
        async with running(app) as client:
            async with app.state.runtime.database.snapshot():
                response = await client.get("/reports/fsma204", params={"format": "csv"})
                body = assert_error(response, 503, "reports_busy")
                assert "retry" in body["detail"]
                assert int(response.headers["Retry-After"]) > 0
                # A trace reads outside the report slots.
                missing = await client.get(f"/trace/lots/{uuid.uuid4()}/forward")
                assert_error(missing, 404, "lot_not_found")
            served = await client.get("/reports/fsma204", params={"format": "csv"})
            assert served.status_code == 200, served.text
