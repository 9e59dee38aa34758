"""Fulfillment wiring: settings, consumer, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.fulfillment.api import router
from services.fulfillment.handlers import Fulfillment
from shared.runtime.consumer import BatchConsumer
from shared.runtime.http import create_http_app
from shared.runtime.replay import ReplayPlan
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import ServiceSettings, database_url_field, per_service

NAME = "fulfillment"


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: int = per_service(NAME, "http_port", 8083)
    ops_http_port: Annotated[int, Field(ge=1, le=65535)] | None = per_service(
        NAME, "ops_http_port", None
    )
    auto_ship: bool = per_service(
        NAME, "auto_ship", False, description="Ship every allocation at once (demos, load tests)."
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    fulfillment = Fulfillment(auto_ship=settings.auto_ship)
    consumer = BatchConsumer(
        group_id=NAME,
        handlers=fulfillment.handlers(),
        max_value_bytes=settings.kafka.max_message_bytes,
    )
    runtime = ServiceRuntime(
        name=NAME,
        settings=settings,
        migrations=Path(__file__).parent / "migrations",
        consumer=consumer,
    )
    app = create_http_app(
        runtime,
        title="lottrace fulfillment",
        description="Ships orders lot by lot, from what inventory allocated.",
        routers=[router],
    )
    app.state.fulfillment = fulfillment
    return app


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return ReplayPlan(
        service=NAME,
        migrations=Path(__file__).parent / "migrations",
        unsupported=(
            "fulfillment's shipments are commands kept in its database (order-shipped announces "
            "them, but fulfillment does not read it back): orders rebuilt from the topics would "
            "forget what shipped"
        ),
    )
