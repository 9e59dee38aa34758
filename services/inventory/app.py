"""Inventory wiring: settings, consumer, runtime, routes. Nothing connects at import."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.inventory.api import router
from services.inventory.handlers import Inventory
from shared.runtime.consumer import BatchConsumer
from shared.runtime.http import create_http_app
from shared.runtime.logging import get_logger
from shared.runtime.replay import ReplayPlan
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import ServiceSettings, database_url_field, per_service

NAME = "inventory"
log = get_logger(__name__)


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: int = per_service(NAME, "http_port", 8082)
    ops_http_port: Annotated[int, Field(ge=1, le=65535)] | None = per_service(
        NAME, "ops_http_port", None
    )
    expiry_sweep_seconds: float = per_service(
        NAME,
        "expiry_sweep_seconds",
        300.0,
        description="How often expired lots give up reservations.",
    )


def create_app(settings: Settings | None = None, *, inventory: Inventory | None = None) -> FastAPI:
    settings = settings or Settings()
    inventory = inventory or Inventory()
    consumer = BatchConsumer(
        group_id=NAME,
        handlers=inventory.handlers(),
        max_value_bytes=settings.kafka.max_message_bytes,
    )

    async def expiry_sweep(runtime: ServiceRuntime) -> None:
        while True:
            try:
                released = await runtime.database.run(inventory.sweep_expired)
                if released:
                    log.info("expired lots released their reservations", lots=released)
            except Exception as error:
                log.warning("expiry sweep failed", error=str(error))
            await asyncio.sleep(settings.expiry_sweep_seconds)

    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        consumer=consumer,
        background=[expiry_sweep],
    )
    app = create_http_app(
        runtime,
        title="lottrace inventory",
        description="Stock per lot, FEFO allocation, holds, expiry, counts.",
        routers=[router],
    )
    app.state.inventory = inventory
    return app


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return ReplayPlan(
        service=NAME,
        migrations=Path(__file__).parent / "migrations",
        unsupported=(
            "inventory's holds, releases and counts are commands kept only in its database, not "
            "events on a topic: stock rebuilt from the topics would lose them"
        ),
    )
