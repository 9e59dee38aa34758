"""One platform (broker, PostgreSQL, the four services as processes) per test module."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from lottrace.devstack import Platform
from lottrace.infra import SERVICES, free_port


def make_platform(**service_env: dict[str, str]) -> Platform:
    return Platform(
        kafka_port=free_port(),
        postgres_port=free_port(),
        http_ports={name: free_port() for name in SERVICES},
        partitions=3,
        durable_postgres=False,
        log_dir=Path(tempfile.mkdtemp(prefix="lottrace-e2e-")),
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "6000", "CONSUMER_BATCH_TIMEOUT_MS": "20"},
        service_env=service_env,
    )


class Clients:
    def __init__(self, platform: Platform) -> None:
        urls = platform.urls()
        self.receiving = httpx.AsyncClient(base_url=urls["receiving"], timeout=30)
        self.inventory = httpx.AsyncClient(base_url=urls["inventory"], timeout=30)
        self.fulfillment = httpx.AsyncClient(base_url=urls["fulfillment"], timeout=30)
        self.recall = httpx.AsyncClient(base_url=urls["recall"], timeout=30)
        self.bootstrap = platform.bootstrap_servers
        self.platform = platform

    async def close(self) -> None:
        for client in (self.receiving, self.inventory, self.fulfillment, self.recall):
            await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    running = make_platform()
    try:
        await running.start(timeout=120)
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture(scope="module")
async def clients(platform: Platform) -> AsyncIterator[Clients]:
    clients = Clients(platform)
    try:
        yield clients
    finally:
        await clients.close()
