"""Drills: everything a recall computes, stage by stage and timed, and nothing it sends.

A drill never touches `recalls`: no notice, no reminder, no late notice, no topic. What it
keeps is its row in `recall_drills`, the history a quality manager shows an auditor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from services.recall import db, reports
from services.recall.domain import CheckLevel, check_level_of, check_sample
from services.recall.handlers import affected_lots
from services.recall.records import DrillRow
from shared.contracts.events import AffectedLot, RecallScope
from shared.ids import new_id
from shared.runtime.database import Connection, Record

STAGES = ("scope", "customers", "records", "fsma204", "epcis", "effectiveness")


@dataclass
class StageClock:
    """How long each stage took, in milliseconds."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round((time.perf_counter() - started) * 1000, 3)

    @property
    def total_ms(self) -> float:
        return round(sum(self.stages.values()), 3)


@dataclass(frozen=True)
class DrillRequest:
    reason: str
    classification: str
    scope: RecallScope
    check_level: CheckLevel | None
    actor: str


@dataclass
class _Records:
    receipts: list[dict[str, object]] = field(default_factory=list)
    inputs: list[dict[str, object]] = field(default_factory=list)
    shipments: list[dict[str, object]] = field(default_factory=list)
    movements: list[dict[str, object]] = field(default_factory=list)


async def run_drill(connection: Connection, request: DrillRequest) -> DrillRow:
    """Compute the recall the request describes, time each stage, and keep the drill."""
    clock = StageClock()
    drill_id, requested_at = new_id(), datetime.now(UTC)
    with clock.stage("scope"):
        lots = await affected_lots(connection, request.scope)
    with clock.stage("customers"):
        reached = await db.customers_of_lots(connection, [lot.lot_id for lot in lots])
    await _reports(connection, lots, clock, requested_at)
    with clock.stage("effectiveness"):
        level = check_level_of(request.classification, request.check_level)
        sample = check_sample(drill_id, [row["customer_id"] for row in reached], level)
        shipped = sum((Decimal(row["quantity"]) for row in reached), Decimal(0))
    drill = DrillRow(
        drill_id=drill_id,
        requested_at=requested_at,
        requested_by=request.actor,
        reason=request.reason,
        classification=request.classification,
        scope=request.scope.model_dump(mode="json", exclude_none=True),
        affected_lots=len(lots),
        affected_customer_count=len(reached),
        shipped_quantity=shipped,
        check_level=level,
        sample_size=len(sample),
        stages=clock.stages,
        total_ms=clock.total_ms,
    )
    await db.insert_drill(connection, drill)
    return drill


async def _reports(
    connection: Connection, lots: list[AffectedLot], clock: StageClock, at: datetime
) -> None:
    """The FSMA 204 sheet and the EPCIS document of the affected lots, as a recall needs them."""
    with clock.stage("records"):
        records = await _traceability_records(connection, lots)
    with clock.stage("fsma204"):
        reports.fsma_csv(
            reports.fsma_rows(
                records.receipts, records.inputs, records.shipments, records.movements
            )
        )
    with clock.stage("epcis"):
        reports.epcis_document(
            receipts=records.receipts,
            inputs=records.inputs,
            shipments=records.shipments,
            movements=records.movements,
            created_at=at,
        )


async def _traceability_records(connection: Connection, lots: list[AffectedLot]) -> _Records:
    """The receipts, inputs, shipments and movements of every affected lot, as the reports
    take them."""
    records = _Records()
    seen: set[str] = set()
    for lot in lots:
        receipts = await db.receipts_touching_lot(connection, lot.lot_id)
        fresh = [dict(r) for r in receipts if r["receipt_id"] not in seen]
        seen.update(str(r["receipt_id"]) for r in fresh)
        records.receipts += fresh
        records.shipments += _dicts(await db.shipment_lines_of_lot(connection, lot.lot_id))
        records.movements += _dicts(await db.movements_of_lot(connection, lot.lot_id))
    receipt_ids = [str(r["receipt_id"]) for r in records.receipts]
    records.inputs = _dicts(await db.inputs_of_receipts(connection, receipt_ids))
    return records


def _dicts(rows: list[Record]) -> list[dict[str, object]]:
    return [dict(row) for row in rows]
