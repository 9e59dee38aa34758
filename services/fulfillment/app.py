"""Fulfillment wiring: settings, consumer, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import SecretStr

from services.fulfillment.api import router
from services.fulfillment.handlers import Fulfillment
from shared.runtime.replay import ReplayPlan
from shared.runtime.settings import (
    HttpPort,
    OpsPort,
    ServiceSettings,
    database_url_field,
    ops_port_field,
    per_service,
)
from shared.runtime.wiring import ServiceWiring

NAME = "fulfillment"
WIRING = ServiceWiring(
    NAME,
    description="Ships orders lot by lot, from what inventory allocated.",
    router=router,
)


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: HttpPort = per_service(NAME, "http_port", 8083)
    ops_http_port: OpsPort = ops_port_field(NAME)
    auto_ship: bool = per_service(
        NAME, "auto_ship", False, description="Ship every allocation at once (demos, load tests)."
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    fulfillment = Fulfillment(auto_ship=settings.auto_ship)
    return WIRING.app(settings, handlers=fulfillment.handlers(), state={"fulfillment": fulfillment})


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return WIRING.unsupported_replay(
        "fulfillment's shipments are commands kept in its database (order-shipped announces "
        "them, but fulfillment does not read it back): orders rebuilt from the topics would "
        "forget what shipped"
    )
