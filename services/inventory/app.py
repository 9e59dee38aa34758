"""Inventory wiring: settings, consumer, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.inventory.api import router
from services.inventory.handlers import Inventory
from services.inventory.registrations import on_lot_registered
from shared.contracts.events import LotRegistered
from shared.runtime.database import UnitOfWork
from shared.runtime.logging import get_logger
from shared.runtime.periodic import every
from shared.runtime.replay import ReplayPlan
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import (
    HttpPort,
    OpsPort,
    ServiceSettings,
    database_url_field,
    ops_port_field,
    per_service,
)
from shared.runtime.wiring import ServiceWiring

NAME = "inventory"
WIRING = ServiceWiring(
    NAME,
    description="Stock per lot, FEFO allocation, holds, expiry, counts.",
    router=router,
)
log = get_logger(__name__)


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: HttpPort = per_service(NAME, "http_port", 8082)
    ops_http_port: OpsPort = ops_port_field(NAME)
    expiry_sweep_seconds: Annotated[float, Field(gt=0)] = per_service(
        NAME,
        "expiry_sweep_seconds",
        300.0,
        description="How often expired lots give up reservations.",
    )


def create_app(settings: Settings | None = None, *, inventory: Inventory | None = None) -> FastAPI:
    settings = settings or Settings()
    inventory = inventory or Inventory()

    async def sweep(unit: UnitOfWork) -> int:
        released = await inventory.sweep_expired(unit)
        if released:
            log.info("expired lots released their reservations", lots=released)
        return released

    async def expiry_sweep(runtime: ServiceRuntime) -> None:
        await every(
            runtime.database, sweep, seconds=settings.expiry_sweep_seconds, what="expiry sweep"
        )

    return WIRING.app(
        settings,
        # A lot registered without stock first: a return of it in the same batch finds it.
        handlers=[(LotRegistered, on_lot_registered), *inventory.handlers()],
        background=[expiry_sweep],
        state={"inventory": inventory},
    )


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return WIRING.unsupported_replay(
        "inventory's holds, releases and counts are commands kept only in its database, not "
        "events on a topic: stock rebuilt from the topics would lose them"
    )
