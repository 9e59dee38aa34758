"""Running a service's ASGI app in the test's event loop, against a real broker and a real
PostgreSQL: HTTP goes through httpx in process, Kafka and SQL over the network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from lottrace.infra import TansuBroker, wait_until
from shared.runtime.service import ServiceRuntime


def kafka_env(broker: TansuBroker) -> dict[str, Any]:
    return {
        "bootstrap_servers": broker.bootstrap_servers,
        "enable_idempotence": False,
        "session_timeout_ms": 6000,
    }


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan, wait until it is ready, and give an HTTP client to it."""
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtime
        await asyncio.wait_for(runtime.started.wait(), 60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await wait_until(ready, timeout=30, what="service ready")
            yield client
