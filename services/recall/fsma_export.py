"""The FSMA 204 sheet of a date range, read and laid out one UTC day at a time.

The sheet sorts by event date first, so each day's rows, sorted, follow the day before's: the
receipts, shipment lines and returns are read in time order through cursors in one snapshot,
each kept as its row's cells as it comes, and only one day of rows is held at once. An export
then needs the memory of its busiest day, not of its whole range (a whole history at once took
724 MB of the service's memory for 200,000 shipment lines).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeAlias, TypeVar

from services.recall import db, reports
from services.recall.records import ReportFilter
from services.recall.reports import SheetLine
from shared.runtime.database import Connection, Database, Record
from shared.tables import Rows, StreamedTable

Event: TypeAlias = dict[str, Any]  # an event's columns, as `reports` lays them out
T = TypeVar("T")
# Rows sent at a time, of a day's sorted lines.
SLICE_ROWS = 2_000


def fsma_sheet(database: Database, selected: ReportFilter) -> StreamedTable:
    """The sheet of the events `selected` picks, its rows read as they are sent."""
    return StreamedTable(reports.XLSX_SHEET_NAME, reports.FSMA_HEADER, _rows(database, selected))


async def _rows(database: Database, selected: ReportFilter) -> AsyncGenerator[Rows, None]:
    """The sheet's rows, a day's at a time, in the sheet's order. One snapshot for every read:
    no shipment without the receipt it ships."""
    async with database.snapshot() as connection:
        async for receipts, lines in _days(connection, selected):
            receipt_ids = [receipt["receipt_id"] for receipt in receipts]
            inputs = await db.inputs_of_receipts(connection, receipt_ids) if receipt_ids else []
            received = reports.receipt_events(receipts, [dict(item) for item in inputs])
            lines.extend(SheetLine.of(row) for row in received)
            reports.lines_in_sheet_order(lines)
            while lines:
                yield [line.cells for line in lines[:SLICE_ROWS]]
                del lines[:SLICE_ROWS]


@dataclass
class _InTimeOrder(Generic[T]):
    """One kind of event, read in time order, each kept as `keep` makes it, handed out a UTC
    day at a time."""

    rows: AsyncIterator[Record]
    moment: str  # the column holding the event's time
    keep: Callable[[Event], T]
    head: Record | None = field(default=None, init=False)

    async def start(self) -> _InTimeOrder[T]:
        await self._advance()
        return self

    async def _advance(self) -> None:
        day = self.day
        # Not `anext(rows, None)`: Python 3.11 turned the end of the rows into a SystemError.
        try:
            self.head = await self.rows.__anext__()
        except StopAsyncIteration:
            self.head = None
        if day is not None and self.day is not None and self.day < day:
            raise RuntimeError(f"{self.moment} went back from {day} to {self.day}: not in order")

    @property
    def day(self) -> date | None:
        return None if self.head is None else reports.event_date(self.head[self.moment])

    async def take(self, day: date) -> list[T]:
        """This kind's events of `day`, which is the earliest day any kind has left."""
        taken: list[T] = []
        while self.head is not None and self.day == day:
            taken.append(self.keep(dict(self.head)))
            await self._advance()
        return taken


async def _days(
    connection: Connection, selected: ReportFilter
) -> AsyncIterator[tuple[list[Event], list[SheetLine]]]:
    """Each day's receipts (laid out once their inputs are read) and the lines of its shipment
    lines and returns to vendor, day by day."""
    receipts = await _InTimeOrder(
        db.report_receipts(connection, selected), "received_at", dict
    ).start()
    shipments = await _InTimeOrder(
        db.report_shipment_lines(connection, selected), "shipped_at", _shipment_line
    ).start()
    returns = await _InTimeOrder(
        db.report_movements(connection, selected, reports.FSMA_MOVEMENT_KINDS),
        "moved_at",
        reports.movement_row,
    ).start()
    kinds = (receipts, shipments, returns)
    while days := [kind.day for kind in kinds if kind.day is not None]:
        day = min(days)
        lines = await shipments.take(day)
        lines += [SheetLine.of(row) for row in await returns.take(day) if row is not None]
        yield await receipts.take(day), lines


def _shipment_line(line: Event) -> SheetLine:
    return SheetLine.of(reports.shipment_row(line))
