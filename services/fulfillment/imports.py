"""Onboarding import of shipment history: each row of a shipments file is announced as its
own `order-shipped` with `imported: true`, which traces and recalls count and inventory never
ships from stock. Fulfillment's own orders and shipments are not touched. A row key taken by
an earlier import is skipped, so a re-run announces nothing twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.fulfillment import db
from services.fulfillment.outgoing import order_shipped
from services.fulfillment.records import ImportedShipmentRecord, imported_shipment
from services.fulfillment.schemas import (
    ImportedShipmentRow,
    ShipmentImportResult,
    ShipmentImportRow,
)
from shared.runtime.database import UnitOfWork
from shared.runtime.imports import RowRejection, not_happened_yet


async def import_shipments(
    unit: UnitOfWork, rows: Sequence[ShipmentImportRow], *, now: datetime, dry_run: bool = False
) -> ShipmentImportResult:
    batch = await db.SHIPMENT_IMPORTS.open(unit.connection, rows)
    rejected = [
        RowRejection(row_key=row.key, column="shipped_at", reason=late)
        for row in batch.fresh
        if (late := not_happened_yet(row.shipped_at, now, "shipped_at"))
    ]
    refused = {rejection.row_key for rejection in rejected}
    fresh = [row for row in batch.fresh if row.key not in refused]
    if not dry_run:
        await db.record_imported_shipments(
            unit.connection, [ImportedShipmentRecord.of(row) for row in fresh]
        )
        for row in fresh:
            unit.emit(order_shipped(imported_shipment(row), imported=True), time=now)
    return ShipmentImportResult(
        imported=[
            ImportedShipmentRow(row_key=row.key, shipment_id=row.assigned_shipment_id)
            for row in fresh
        ],
        already_imported=batch.already_imported,
        rejected=rejected,
    )
