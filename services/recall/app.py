"""Recall wiring: settings, consumer, notifier, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.recall import db, quality_check
from services.recall.api import router
from services.recall.handlers import Recalls, run_notifier
from services.recall.registrations import on_lot_registered
from services.recall.reminders import ReminderPolicy, run_reminders
from shared.contracts.events import LotRegistered
from shared.runtime.consumer import EventHandler
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

NAME = "recall"


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: HttpPort = per_service(NAME, "http_port", 8084)
    ops_http_port: OpsPort = ops_port_field(NAME)
    notice_chunk: Annotated[int, Field(ge=1)] = per_service(
        NAME, "notice_chunk", 5000, description="Customers notified per transaction."
    )
    max_shipments_per_notice: Annotated[int, Field(ge=1)] | None = per_service(
        NAME,
        "max_shipments_per_notice",
        None,
        description="Optional cap on shipments per notice. Notices are split by encoded size"
        " in any case: each stays under KAFKA_MAX_MESSAGE_BYTES whatever the field lengths.",
    )
    reminder_delay_hours: Annotated[float, Field(gt=0)] = per_service(
        NAME,
        "reminder_delay_hours",
        48.0,
        description="A customer silent this long after its last notice gets a reminder.",
    )
    reminder_max: Annotated[int, Field(ge=0)] = per_service(
        NAME, "reminder_max", 3, description="Reminders per customer and recall, at most."
    )
    reminder_check_seconds: Annotated[float, Field(gt=0)] = per_service(
        NAME, "reminder_check_seconds", 60.0, description="How often due reminders are sought."
    )
    data_quality_check_seconds: Annotated[float, Field(gt=0)] = per_service(
        NAME,
        "data_quality_check_seconds",
        300.0,
        description="How often the data-quality monitor checks every lot (one replica at a"
        " time; every replica exports the latest check as gauges at this pace).",
    )

    def reminder_policy(self) -> ReminderPolicy:
        return ReminderPolicy(
            delay=timedelta(hours=self.reminder_delay_hours),
            most=self.reminder_max,
            per_round=self.notice_chunk,
        )

    def data_quality_interval(self) -> timedelta:
        return timedelta(seconds=self.data_quality_check_seconds)


WIRING = ServiceWiring(
    NAME,
    description="Lot genealogy, recalls with per-customer notices, traces and reports.",
    router=router,
)
MIGRATIONS = WIRING.migrations


def _recalls(settings: Settings) -> Recalls:
    return Recalls(
        notice_chunk=settings.notice_chunk,
        max_message_bytes=settings.kafka.max_message_bytes,
        max_shipments_per_notice=settings.max_shipments_per_notice,
    )


def _handlers(recalls: Recalls) -> list[tuple[type[Any], EventHandler]]:
    """A lot registered without stock first: shipments of it in the same batch find it."""
    return [(LotRegistered, on_lot_registered), *recalls.handlers()]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    recalls = _recalls(settings)

    async def notifier(runtime: ServiceRuntime) -> None:
        await run_notifier(recalls, runtime.database)

    async def reminders(runtime: ServiceRuntime) -> None:
        await run_reminders(
            recalls,
            runtime.database,
            settings.reminder_policy(),
            every_seconds=settings.reminder_check_seconds,
        )

    async def data_quality(runtime: ServiceRuntime) -> None:
        await every(
            runtime.database,
            partial(quality_check.scheduled, interval=settings.data_quality_interval()),
            seconds=settings.data_quality_check_seconds,
            what="data-quality check",
        )

    return WIRING.app(
        settings,
        handlers=_handlers(recalls),
        background=[notifier, reminders, data_quality],
        state={"recalls": recalls, "reminder_policy": settings.reminder_policy()},
    )


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    """Lots, genealogy, customers and shipments come from the topics; recalls are commands."""
    settings = settings or Settings()
    return ReplayPlan(
        service=NAME,
        migrations=MIGRATIONS,
        consumer=lambda: WIRING.consumer(settings, _handlers(_recalls(settings))),
        # Responses, returns and lot movements are owned too: their topics may have dropped
        # them, and consuming them again changes nothing (their keys are their ids).
        owned_tables=(
            "recalls",
            "recall_lots",
            "recall_chunks",
            "recall_notices",
            "recall_responses",
            "recall_reported_units",
            "recall_returns",
            "recall_reminders",
            "recall_drills",
            "lot_movements",
        ),
        after_copy=db.restart_watermarks,
        switch_blocker=db.recall_sending_notices,
        source=settings.event_source or f"/lottrace/{NAME}",
    )
