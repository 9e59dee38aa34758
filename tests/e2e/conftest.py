"""One platform (broker, PostgreSQL, the four services as processes) per test module."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from bench.run import on_free_ports
from lottrace.devstack import Platform

# Quick rebalances and short consumer batches: the tests wait on what the services do.
E2E_ENV = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "CONSUMER_BATCH_TIMEOUT_MS": "20"}


def log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lottrace-e2e-"))


def make_platform(**service_env: dict[str, str]) -> Platform:
    return on_free_ports(
        partitions=3,
        durable_postgres=False,
        log_dir=log_dir(),
        extra_env=E2E_ENV,
        service_env=service_env,
    )


class Clients:
    """One HTTP client per service, each sending the platform's admin key."""

    def __init__(self, platform: Platform) -> None:
        urls = platform.urls()
        headers = {"Authorization": f"Bearer {platform.admin_key}"}

        def client(name: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=urls[name], timeout=30, headers=headers)

        self.receiving = client("receiving")
        self.inventory = client("inventory")
        self.fulfillment = client("fulfillment")
        self.recall = client("recall")
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
