"""Exports sent as they are read share a service's pool with its consumers, against a real
PostgreSQL and broker: they read in a few slots of their own, so that downloads never take
every connection, and one whose client stops taking its bytes is dropped and gives its slot
back."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from starlette.types import ASGIApp, Message

from lottrace.infra import TansuBroker
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as create_recall
from shared.errors import Unavailable
from shared.runtime.database import Database
from shared.runtime.settings import ExportLimits
from tests.conftest import PostgresServer
from tests.integration.service_apps import ADMIN_KEY, assert_error, quick_settings, running

EXPORT = "/reports/fsma204"


async def test_exports_beyond_their_slots_are_refused_while_the_pool_serves_the_rest(
    postgres_server: PostgresServer,
) -> None:
    limits = ExportLimits(slots=1, wait_seconds=0.2)
    async with (
        postgres_server.fresh_database() as url,
        Database(url, source="/test", min_size=1, max_size=3, exports=limits) as database,
    ):
        async with database.export_snapshot() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(Unavailable) as refused:
                async with database.export_snapshot():
                    pass
            assert refused.value.code == "exports_busy"
            # What consumers, the API and short reports ask of the pool is still served.
            assert await database.fetchval("SELECT 2") == 2
            async with database.snapshot() as report:
                assert await report.fetchval("SELECT 3") == 3
        async with database.export_snapshot() as next_export:
            assert await next_export.fetchval("SELECT 4") == 4


async def test_an_export_beyond_the_slots_is_a_503_to_retry(
    postgres_server: PostgresServer, broker: TansuBroker
) -> None:
    async with postgres_server.fresh_database() as url:
        settings = quick_settings(
            RecallSettings, url, broker, export_slots=1, export_wait_seconds=0.1
        )
        app = create_recall(settings)
        async with running(app) as client:
            async with app.state.runtime.database.export_snapshot():
                response = await client.get(EXPORT, params={"format": "csv"})
                body = assert_error(response, 503, "exports_busy")
                assert "retry" in body["detail"]
                assert int(response.headers["Retry-After"]) > 0
                missing = await client.get(f"/trace/lots/{uuid.uuid4()}/forward")
                assert_error(missing, 404, "lot_not_found")
            served = await client.get(EXPORT, params={"format": "csv"})
            assert served.status_code == 200, served.text


async def test_a_paused_download_is_dropped_and_its_slot_serves_the_next(
    postgres_server: PostgresServer, broker: TansuBroker
) -> None:
    async with postgres_server.fresh_database() as url:
        settings = quick_settings(
            RecallSettings,
            url,
            broker,
            export_slots=1,
            export_wait_seconds=0.1,
            export_stall_seconds=1,
        )
        app = create_recall(settings)
        async with running(app) as client:
            sent = await asyncio.wait_for(_download_paused_after_its_first_bytes(app), 10)
            assert [message["type"] for message in sent][:2] == [
                "http.response.start",
                "http.response.body",
            ]
            assert sent[0]["status"] == 200
            served = await client.get(EXPORT, params={"format": "csv"})
            assert served.status_code == 200, served.text


async def _download_paused_after_its_first_bytes(app: ASGIApp) -> list[Message]:
    """What the server sent a client that stays connected but, once the first bytes came,
    takes no more: each later send waits, as on a full socket."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": EXPORT,
        "raw_path": EXPORT.encode(),
        "query_string": b"format=csv",
        "root_path": "",
        "headers": [(b"host", b"service"), (b"authorization", f"Bearer {ADMIN_KEY}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("service", 80),
    }
    await app(scope, receive, send)
    return sent
