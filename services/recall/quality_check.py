"""The data-quality monitor run against the projection: every received lot checked a page at a
time by `quality.py`'s rules, and the counts kept as Prometheus gauges, refreshed on a schedule
and by every report, so an alert can fire on them (docs/reports.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from services.recall import db, quality
from services.recall.quality import QualityLot, Tally
from services.recall.schemas import DataQualityReport
from shared.runtime.database import Connection, Record, UnitOfWork
from shared.runtime.metrics import DATA_QUALITY_FINDINGS

PAGE = 2000  # lots checked per round of queries
K = TypeVar("K")


async def check(connection: Connection, *, examples: int = quality.EXAMPLES) -> DataQualityReport:
    """Every finding over the whole projection, with up to `examples` lots each."""
    dated_skus = await db.skus_with_dated_lots(connection)
    tally = Tally(dated_skus=dated_skus, examples_per_finding=examples)
    for lot in await db.shipped_unreceived_lots(connection):
        tally.unreceived(lot)
    after: UUID | None = None
    while page := await db.quality_lots(connection, after=after, limit=PAGE):
        await _check_page(connection, page, tally)
        after = page[-1].lot_id
    report = tally.report(datetime.now(UTC))
    publish_counts(report)
    return report


async def _check_page(connection: Connection, lots: list[QualityLot], tally: Tally) -> None:
    lot_ids = [lot.lot_id for lot in lots]
    receipts = _by(await db.quality_receipts(connection, lot_ids), "lot_id")
    receipt_ids = [r["receipt_id"] for rows in receipts.values() for r in rows]
    inputs = _by(await db.inputs_of_receipts(connection, receipt_ids), "receipt_id")
    shipments = _by(await db.quality_shipments(connection, lot_ids), "lot_id")
    for lot in lots:
        rows = quality.lot_event_rows(receipts[lot.lot_id], inputs, shipments[lot.lot_id])
        tally.checked(lot, quality.missing_kdes(rows))


def _by(rows: Iterable[Record], key: str) -> defaultdict[Any, list[dict[str, Any]]]:
    grouped: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(dict(row))
    return grouped


def publish_counts(report: DataQualityReport) -> None:
    for finding in report.findings:
        DATA_QUALITY_FINDINGS.labels(finding=finding.code).set(finding.count)


async def refresh(unit: UnitOfWork) -> int:
    """One scheduled check, for the gauges (`shared.runtime.periodic.every`)."""
    await check(unit.connection, examples=0)
    return 0
