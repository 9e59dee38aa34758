"""The FSMA 204 sheet is read and sent one UTC day at a time, against a real broker and
PostgreSQL: events of several days, published through the topics, come out exactly as one sort
of them all would lay them out, as CSV and as XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
import pytest_asyncio

from bench.measure import wait_caught_up
from lottrace.infra import TansuBroker
from services.recall import db, fsma_export, reports
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as create_recall
from services.recall.fsma_export import fsma_sheet
from services.recall.records import ReportFilter
from shared.contracts.events import GoodsReceived, LotMoved, OrderShipped
from shared.runtime.database import Database, Record
from shared.tables import XLSX_MEDIA_TYPE, as_csv
from tests.conftest import PostgresServer
from tests.integration.events import lot, moved, shipment_of
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish

GTIN = "09501101530003"


@pytest_asyncio.fixture
async def recall(
    postgres_server: PostgresServer, broker: TansuBroker
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with (
        postgres_server.fresh_database() as url,
        running(create_recall(quick_settings(RecallSettings, url, broker))) as client,
    ):
        yield client, url


@dataclass(frozen=True)
class Days:
    """Three UTC days of a test's own, years back: the broker is shared, and other tests'
    events fall near today."""

    first: date

    def at(self, day: int, hours: float) -> datetime:
        """`hours` after midnight UTC of day 1, 2 or 3."""
        start = datetime.combine(self.first, time(0), tzinfo=UTC)
        return start + timedelta(days=day - 1, hours=hours)

    def date(self, day: int) -> date:
        return self.first + timedelta(days=day - 1)


def history(days: Days) -> list[GoodsReceived | OrderShipped | LotMoved]:
    """Receipts, a transformation, shipments and a return to vendor over three days (day 1: 4
    rows, day 2: 7, day 3: 4); within a day the events come in another order than the sheet's
    (by TLC, then time), and two sit on a day's first and last second."""

    def received(code: str, at: datetime, **more: Any) -> GoodsReceived:
        return lot(f"{code}-{days.first}", received_at=at, **more)

    def shipped(number: int, at: datetime, *lots: GoodsReceived) -> OrderShipped:
        buyer = {"customer_id": f"C-{number % 3}", "name": f"Customer {number % 3}"}
        return shipment_of(buyer, *lots, quantity=2, shipped_at=at, number=f"{days.first}-{number}")

    oranges = received("ORANGES", days.at(1, 3)).model_copy(update={"gtin": GTIN})
    apples = received("APPLES", days.at(1, 5))
    juice = received("JUICE", days.at(2, 1), inputs=[oranges, apples])
    zucchini = received("ZUCCHINI", days.at(2, 0))
    shipments = [
        shipped(1, days.at(1, 9), oranges, apples),
        shipped(2, days.at(2, 2), zucchini),
        shipped(3, days.at(2, 3), apples, juice),
        shipped(4, days.at(3, 0) - timedelta(seconds=1), juice),
        shipped(5, days.at(3, 4), oranges, zucchini, juice),
    ]
    back = moved(apples, quantity=5, moved_at=days.at(3, 2), rma=f"RMA-{days.first}")
    return [oranges, apples, juice, zucchini, *shipments, back]


async def sorted_at_once(url: str, selected: ReportFilter) -> bytes:
    """The sheet as one sort of every event: what the route sent before it streamed."""
    async with (
        Database(url, source="/tests", min_size=1, max_size=1) as database,
        database.snapshot() as connection,
    ):
        receipts = await _all(db.report_receipts(connection, selected))
        inputs = await db.inputs_of_receipts(connection, [r["receipt_id"] for r in receipts])
        shipments = await _all(db.report_shipment_lines(connection, selected))
        movements = await _all(
            db.report_movements(connection, selected, reports.FSMA_MOVEMENT_KINDS)
        )
    rows = reports.fsma_rows(receipts, [dict(i) for i in inputs], shipments, movements)
    return as_csv(reports.fsma_table(rows))


async def _all(rows: AsyncIterator[Record]) -> list[dict[str, Any]]:
    return [dict(row) async for row in rows]


async def published(broker: TansuBroker, days: Days) -> Days:
    await publish(broker.bootstrap_servers, *history(days))
    await wait_caught_up(
        broker.bootstrap_servers,
        "recall",
        ["goods-received", "order-shipped", "lot-movements"],
        timeout=30,
    )
    return days


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_the_sheet_sent_a_day_at_a_time_is_the_sheet_of_one_sort(
    recall: tuple[httpx.AsyncClient, str], broker: TansuBroker
) -> None:
    client, url = recall
    days = await published(broker, Days(date(2011, 3, 5)))
    three_days = {"from": days.date(1).isoformat(), "to": days.date(3).isoformat()}

    response = await client.get("/reports/fsma204", params={**three_days, "format": "csv"})
    assert response.status_code == 200, response.text
    assert "content-length" not in response.headers  # sent as it is read
    selected = ReportFilter(days.date(1), days.date(3), None, None)
    assert response.content == await sorted_at_once(url, selected)
    header, *sheet = rows_of(response.text)
    event_date = header.index(reports.FsmaColumn.EVENT_DATE.value)
    assert [row[event_date] for row in sheet] == sorted(
        [days.date(1).isoformat()] * 4 + [days.date(2).isoformat()] * 7
        + [days.date(3).isoformat()] * 4
    )  # fmt: skip

    async with Database(url, source="/tests", min_size=1, max_size=1) as database:
        batches = [batch async for batch in fsma_sheet(database, selected).batches]
    column = reports.FSMA_COLUMNS.index(reports.FsmaColumn.EVENT_DATE)
    assert [{row[column] for row in batch} for batch in batches] == [
        {days.date(1)},
        {days.date(2)},
        {days.date(3)},
    ]  # one day held at a time

    workbook = await client.get("/reports/fsma204", params={**three_days, "format": "xlsx"})
    assert workbook.status_code == 200, workbook.text
    assert workbook.headers["content-type"] == XLSX_MEDIA_TYPE
    cells = openpyxl.load_workbook(io.BytesIO(workbook.content))[reports.XLSX_SHEET_NAME]
    assert [c.value for c in cells[1]] == list(reports.FSMA_HEADER)
    assert cells.max_row == 1 + len(sheet)


async def test_a_date_range_picks_its_days_alone(
    recall: tuple[httpx.AsyncClient, str], broker: TansuBroker
) -> None:
    client, url = recall
    days = await published(broker, Days(date(2012, 10, 27)))
    day_2 = days.date(2)

    response = await client.get(
        "/reports/fsma204", params={"from": day_2.isoformat(), "to": day_2.isoformat()}
    )
    assert response.status_code == 200, response.text
    assert response.content == await sorted_at_once(url, ReportFilter(day_2, day_2, None, None))
    assert len(rows_of(response.text)) == 1 + 7

    before = days.date(1) - timedelta(days=10)
    empty = await client.get(
        "/reports/fsma204", params={"from": before.isoformat(), "to": before.isoformat()}
    )
    assert empty.status_code == 200, empty.text
    assert rows_of(empty.text) == [list(reports.FSMA_HEADER)]


async def test_days_sorted_in_runs_on_disk_come_out_the_same(
    recall: tuple[httpx.AsyncClient, str], broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = recall
    days = await published(broker, Days(date(2013, 6, 30)))
    monkeypatch.setattr(fsma_export, "RUN_LINES", 2)  # every day spills runs of two lines

    three_days = {"from": days.date(1).isoformat(), "to": days.date(3).isoformat()}
    response = await client.get("/reports/fsma204", params=three_days)
    assert response.status_code == 200, response.text
    selected = ReportFilter(days.date(1), days.date(3), None, None)
    assert response.content == await sorted_at_once(url, selected)
    assert len(rows_of(response.text)) == 1 + 4 + 7 + 4
