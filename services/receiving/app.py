"""Receiving wiring: settings, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from pydantic import SecretStr

from services.receiving.api import router
from services.receiving.domain import LotNumbering
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

NAME = "receiving"
WIRING = ServiceWiring(
    NAME,
    description="Receives goods into lots: lot codes, dates, suppliers, genealogy.",
    router=router,
)


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: HttpPort = per_service(NAME, "http_port", 8081)
    ops_http_port: OpsPort = ops_port_field(NAME)
    default_location: str = per_service(NAME, "default_location", "MAIN")
    lot_code_rules_file: Path | None = per_service(
        NAME,
        "lot_code_rules_file",
        None,
        description="YAML: {default: pattern, skus: {sku: pattern}, suppliers: {id: pattern}}.",
    )


def load_lot_numbering(path: Path | None) -> LotNumbering:
    if path is None:
        return LotNumbering()
    document: Any = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: lot code rules must be a mapping")
    return LotNumbering.from_mapping(document)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return WIRING.app(
        settings,
        state={
            "lot_numbering": load_lot_numbering(settings.lot_code_rules_file),
            "default_location": settings.default_location,
        },
    )


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return WIRING.unsupported_replay(
        "receiving consumes no topic: its lots and receipts are the record itself, not a "
        "projection to rebuild"
    )
