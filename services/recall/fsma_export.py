"""The FSMA 204 sheet of a date range, read and laid out one UTC day at a time.

The sheet sorts by event date first, so each day's rows, sorted, follow the day before's: the
receipts, shipment lines and returns are read in time order through cursors in one snapshot,
each kept as its row's cells and sort key as it comes. A day is sorted in memory up to
RUN_LINES lines, and beyond in sorted runs on disk merged as they are sent: an export holds
about RUN_LINES lines (and a chunk of each run) whatever its range and however busy its days.
A whole history at once took 724 MB of the service's memory for 200,000 shipment lines (a
throwaway probe; docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from typing import Any, Generic, TypeAlias, TypeVar

from services.recall import db, reports
from services.recall.records import ReportFilter
from services.recall.reports import FsmaRow, SheetLine
from shared.runtime.database import Connection, Database, Record
from shared.spilling_sort import SpillingSort
from shared.tables import Rows, StreamedTable

Event: TypeAlias = dict[str, Any]  # an event's columns, as `reports` lays them out
T = TypeVar("T")
# Rows sent at a time, of a day's sorted lines.
SLICE_ROWS = 2_000
# Lines of one day held before a sorted run of them goes to disk (a busy day's lines are then
# merged from the runs, read back as the merge reaches them).
RUN_LINES = 20_000


def fsma_sheet(database: Database, selected: ReportFilter) -> StreamedTable:
    """The sheet of the events `selected` picks, its rows read as they are sent."""
    return StreamedTable(reports.XLSX_SHEET_NAME, reports.FSMA_HEADER, _rows(database, selected))


async def _rows(database: Database, selected: ReportFilter) -> AsyncGenerator[Rows, None]:
    """The sheet's rows, a day's at a time, in the sheet's order. One snapshot for every read:
    no shipment without the receipt it ships. It lasts as long as the download: an export's."""
    async with database.export_snapshot() as connection:
        events = await _Events.of(connection, selected)
        while (day := events.next_day()) is not None:
            with SpillingSort(_in_sheet_order, run_items=RUN_LINES) as lines:
                await _read_day(connection, events, day, lines)
                in_order = lines.sorted()
                while chunk := list(islice(in_order, SLICE_ROWS)):
                    yield [line.cells for line in chunk]


async def _read_day(
    connection: Connection, events: _Events, day: date, lines: SpillingSort[SheetLine]
) -> None:
    """The day's receipts (laid out once their inputs are read), shipment lines and returns to
    vendor, RUN_LINES at most at a time."""
    while receipts := await events.receipts.take(day, RUN_LINES):
        receipt_ids = [receipt["receipt_id"] for receipt in receipts]
        inputs = [dict(item) for item in await db.inputs_of_receipts(connection, receipt_ids)]
        lines.add(SheetLine.of(row) for row in reports.receipt_events(receipts, inputs))
    while shipped := await events.shipments.take(day, RUN_LINES):
        lines.add(shipped)
    while returned := await events.returns.take(day, RUN_LINES):
        lines.add(SheetLine.of(row) for row in returned if row is not None)


def _in_sheet_order(line: SheetLine) -> tuple[Any, ...]:
    return line.key


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

    async def take(self, day: date, limit: int) -> list[T]:
        """Up to `limit` more of this kind's events of `day`, the earliest day any kind has
        left; none once the day's are all taken."""
        taken: list[T] = []
        while self.head is not None and self.day == day and len(taken) < limit:
            taken.append(self.keep(dict(self.head)))
            await self._advance()
        return taken


@dataclass(frozen=True)
class _Events:
    """The three kinds of event the sheet lists, each read in time order."""

    receipts: _InTimeOrder[Event]
    shipments: _InTimeOrder[SheetLine]
    returns: _InTimeOrder[FsmaRow | None]

    @classmethod
    async def of(cls, connection: Connection, selected: ReportFilter) -> _Events:
        kinds = db.report_movements(connection, selected, reports.FSMA_MOVEMENT_KINDS)
        return cls(
            await _InTimeOrder(
                db.report_receipts(connection, selected), "received_at", dict
            ).start(),
            await _InTimeOrder(
                db.report_shipment_lines(connection, selected), "shipped_at", _shipment_line
            ).start(),
            await _InTimeOrder(kinds, "moved_at", reports.movement_row).start(),
        )

    def next_day(self) -> date | None:
        """The earliest day any kind has events of, or None when all are read."""
        days = [kind.day for kind in (self.receipts, self.shipments, self.returns)]
        return min((day for day in days if day is not None), default=None)


def _shipment_line(line: Event) -> SheetLine:
    return SheetLine.of(reports.shipment_row(line))
