"""Receiving wiring: settings, runtime, routes. Nothing connects at import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import FastAPI
from pydantic import Field, SecretStr

from services.receiving.api import router
from services.receiving.domain import LotNumbering
from shared.runtime.http import create_http_app
from shared.runtime.replay import ReplayPlan
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import ServiceSettings, database_url_field, per_service

NAME = "receiving"


class Settings(ServiceSettings):
    database_url: SecretStr = database_url_field(NAME)
    http_port: int = per_service(NAME, "http_port", 8081)
    ops_http_port: Annotated[int, Field(ge=1, le=65535)] | None = per_service(
        NAME, "ops_http_port", None
    )
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
    runtime = ServiceRuntime(
        name=NAME, settings=settings, migrations=Path(__file__).parent / "migrations"
    )
    app = create_http_app(
        runtime,
        title="lottrace receiving",
        description="Receives goods into lots: lot codes, dates, suppliers, genealogy.",
        routers=[router],
    )
    app.state.lot_numbering = load_lot_numbering(settings.lot_code_rules_file)
    app.state.default_location = settings.default_location
    return app


def replay_plan(settings: Settings | None = None) -> ReplayPlan:
    return ReplayPlan(
        service=NAME,
        migrations=Path(__file__).parent / "migrations",
        unsupported=(
            "receiving consumes no topic: its lots and receipts are the record itself, not a "
            "projection to rebuild"
        ),
    )
