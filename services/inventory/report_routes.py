"""Inventory's lot reports over HTTP (docs/reports.md): short-dated stock, lot movement, returns
and the supplier scorecard, each as JSON, CSV or XLSX. The figures are `reporting.py`'s."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.inventory import db, reporting
from services.inventory.handlers import Inventory
from services.inventory.reporting import (
    FACT_RULES,
    MAX_DAYS,
    ExpiryWindow,
    LotReportFacts,
    ReturnedUnits,
)
from services.inventory.schemas import (
    LotMovementReport,
    ReturnsReport,
    ShortDatedReport,
    SupplierScorecard,
)
from shared.runtime.auth import Role, requires
from shared.runtime.http import connection_of, database_of
from shared.tables import TABLE_RESPONSES, ReportFormat, report_response

router = APIRouter(tags=["reports"], dependencies=[requires(Role.VIEWER)])

FormatQuery = Annotated[
    ReportFormat,
    Query(alias="format", description="json, or the report's tables as csv or xlsx."),
]
ReceivedWithin = Annotated[
    int,
    Query(ge=1, le=MAX_DAYS, description="Lots received on or after today less this many days."),
]


def _today(request: Request) -> date:
    inventory: Inventory = request.app.state.inventory
    return inventory.today()


@dataclass(frozen=True)
class ReceivedLots:
    """The lots received in a report's window and what customers returned of them."""

    lots: list[LotReportFacts]
    returned: list[ReturnedUnits]


async def _received_with_returns(request: Request, since: date) -> ReceivedLots:
    """The lots received since that day and what customers returned of them, in one snapshot."""
    async with database_of(request).snapshot() as connection:
        lots = await db.lot_report_facts(connection, FACT_RULES, received_since=since)
        returned = await db.returned_units(connection, [lot.lot_id for lot in lots])
    return ReceivedLots(lots, returned)


@router.get(
    "/reports/short-dated",
    summary="Lots expiring soon, and what will not sell before they expire",
    response_model=ShortDatedReport,
    responses=TABLE_RESPONSES,
)
async def short_dated_report(
    request: Request,
    days: Annotated[
        int,
        Query(ge=0, le=MAX_DAYS, description="Lots expiring from today through this many days."),
    ] = 30,
    sales_days: Annotated[
        int, Query(ge=1, le=MAX_DAYS, description="The days the sell rate is measured over.")
    ] = 28,
    report_format: FormatQuery = ReportFormat.JSON,
) -> Response:
    """Lots for sale expiring within `days`, with their on-hand, their SKU's daily sell rate
    over the last `sales_days` days, and the units that will not sell in time at that rate
    (FEFO: each lot sells after the SKU's lots expiring before it)."""
    today = _today(request)
    async with database_of(request).snapshot() as connection:
        lots = await db.lot_report_facts(
            connection, FACT_RULES, expiring=ExpiryWindow.of(today, days)
        )
        since = today - timedelta(days=sales_days - 1)
        shipped = await db.shipped_per_sku(connection, {lot.sku for lot in lots}, since)
    report = reporting.short_dated(
        lots, shipped, today=today, within_days=days, sales_days=sales_days
    )
    return report_response(report, report_format, f"short-dated_{today}")


@router.get(
    "/reports/lot-movement",
    summary="Per lot: sell-through, units per day, days of cover; fast and slow movers",
    response_model=LotMovementReport,
    responses=TABLE_RESPONSES,
)
async def lot_movement_report(
    request: Request, days: ReceivedWithin = 90, report_format: FormatQuery = ReportFormat.JSON
) -> Response:
    """Which lots move fast and which sit: each lot received in the window, and every lot with
    stock on hand however old, against the average pace of its SKU's lots."""
    today = _today(request)
    async with connection_of(request) as connection:
        lots = await db.lot_report_facts(
            connection, FACT_RULES, received_since=today - timedelta(days=days), with_stock=True
        )
    report = reporting.lot_movement(lots, today=today, received_within_days=days)
    return report_response(report, report_format, f"lot-movement_{today}")


@router.get(
    "/reports/returns",
    summary="Returns by lot, SKU, supplier and reason, with the return rate against shipped",
    response_model=ReturnsReport,
    responses=TABLE_RESPONSES,
)
async def returns_report(
    request: Request, days: ReceivedWithin = 365, report_format: FormatQuery = ReportFormat.JSON
) -> Response:
    """Why so many returns come from a lot: the units customers returned of the lots received
    in the window, against what shipped of them. CSV: one table, `dimension` per row."""
    today = _today(request)
    received = await _received_with_returns(request, today - timedelta(days=days))
    report = reporting.returns(
        received.lots, received.returned, today=today, received_within_days=days
    )
    return report_response(report, report_format, f"returns_{today}")


@router.get(
    "/reports/suppliers",
    summary="Supplier scorecard: lots, QC, holds, returns, recalls, shelf life at receipt",
    response_model=SupplierScorecard,
    responses=TABLE_RESPONSES,
)
async def supplier_scorecard(
    request: Request, days: ReceivedWithin = 365, report_format: FormatQuery = ReportFormat.JSON
) -> Response:
    """Which suppliers deliver good lots, over the lots received in the window."""
    today = _today(request)
    received = await _received_with_returns(request, today - timedelta(days=days))
    report = reporting.supplier_scorecard(
        received.lots, received.returned, today=today, received_within_days=days
    )
    return report_response(report, report_format, f"suppliers_{today}")
