"""The data-quality monitor run against the projection (docs/reports.md): every received lot
checked a page at a time by `quality.py`'s rules.

The check is costly (it reads every lot), so it runs on a schedule on one replica at a time
(an advisory lock), and its result is stored: every replica serves the stored report and
exports its counts as Prometheus gauges, so an alert can fire on them. A recall manager may
ask for a check at once (`POST /reports/data-quality/refresh`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.recall import db, quality
from services.recall.quality import LotRecords, QualityLot, Tally
from services.recall.schemas import DataQualityReport
from shared.runtime.database import Connection, Record, UnitOfWork
from shared.runtime.metrics import DATA_QUALITY_FINDINGS

PAGE = 2000  # lots checked per round of queries


async def check(connection: Connection) -> DataQualityReport:
    """Every finding over the whole projection, with up to `quality.MAX_EXAMPLES` lots each."""
    dated_skus = await db.skus_with_dated_lots(connection)
    tally = Tally(dated_skus=dated_skus, examples_per_finding=quality.MAX_EXAMPLES)
    for unreceived in await db.shipped_unreceived_lots(connection):
        tally.unreceived(unreceived)
    after: UUID | None = None
    while page := await db.quality_lots(connection, after=after, limit=PAGE):
        records = await _records(connection, page)
        for lot in page:
            tally.checked(lot, quality.missing_kdes(records.event_rows(lot.lot_id)))
        after = page[-1].lot_id
    return tally.report(datetime.now(UTC))


async def _records(connection: Connection, lots: list[QualityLot]) -> LotRecords:
    lot_ids = [lot.lot_id for lot in lots]
    receipts = _by(await db.quality_receipts(connection, lot_ids), "lot_id")
    receipt_ids = [r["receipt_id"] for rows in receipts.values() for r in rows]
    inputs = _by(await db.inputs_of_receipts(connection, receipt_ids), "receipt_id")
    shipments = _by(await db.quality_shipments(connection, lot_ids), "lot_id")
    return LotRecords(receipts, inputs, shipments)


def _by(rows: Iterable[Record], key: str) -> dict[Any, list[dict[str, Any]]]:
    grouped: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(dict(row))
    return dict(grouped)


def publish_counts(report: DataQualityReport) -> None:
    for finding in report.findings:
        DATA_QUALITY_FINDINGS.labels(finding=finding.code).set(finding.count)


async def scheduled(unit: UnitOfWork, *, interval: timedelta) -> int:
    """One turn of the schedule (`shared.runtime.periodic.every`): the replica that takes the
    lock checks when the stored check is due; every replica exports the stored counts."""
    connection = unit.connection
    if await db.try_quality_lock(connection) and quality.is_due(
        await db.quality_checked_at(connection), datetime.now(UTC), interval
    ):
        await _checked(connection)
    elif report := await db.stored_quality_report(connection):
        publish_counts(report)
    return 0


async def checked_now(unit: UnitOfWork) -> DataQualityReport:
    """A check at once (after the one running, if any), stored and exported."""
    await db.wait_quality_lock(unit.connection)
    return await _checked(unit.connection)


async def latest(unit: UnitOfWork) -> DataQualityReport:
    """The stored check; before the first one is stored, one at once (requests that come
    together wait for it rather than each running one)."""
    report = await db.stored_quality_report(unit.connection)
    if report is None:
        await db.wait_quality_lock(unit.connection)
        report = await db.stored_quality_report(unit.connection)
    return report if report is not None else await _checked(unit.connection)


async def _checked(connection: Connection) -> DataQualityReport:
    report = await check(connection)
    await db.store_quality_report(connection, report)
    publish_counts(report)
    return report
