"""A table too large to hold at once (the FSMA 204 sheet of a long range) is sent as its rows
are read: as CSV, the same bytes the table held at once would be; as XLSX, the same sheet,
written to a file that has no name once written, or refused before a byte is sent when it would
not fit in one sheet."""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncGenerator
from datetime import date, time
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from starlette.responses import StreamingResponse
from starlette.types import Message

from shared import tables
from shared.tables import (
    Rows,
    StreamedTable,
    Table,
    TableFormat,
    TableTooLarge,
    as_csv,
    as_xlsx,
    streamed_response,
)

COLUMNS = ("Lot", "Quantity", "Date", "Time")
BATCHES: list[Rows] = [
    [("=cmd|x", Decimal("2.50"), date(2026, 1, 1), time(9, 30))],
    [],
    [("L-2", Decimal(3), date(2026, 1, 2), None), ("L-3", None, None, time(23, 59, 59))],
]


class Batches:
    """The rows in batches, noting whether the reader was closed (its snapshot let go)."""

    def __init__(self, batches: list[Rows]) -> None:
        self.batches = batches
        self.closed = False

    async def __call__(self) -> AsyncGenerator[Rows, None]:
        try:
            for batch in self.batches:
                yield batch
        finally:
            self.closed = True


def whole() -> Table:
    return Table("Sheet", COLUMNS, tuple(row for batch in BATCHES for row in batch))


@pytest.fixture(autouse=True)
def own_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the exports write: a folder of the test's own, that nothing else writes to."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def left_in(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def body_of(response: StreamingResponse) -> bytes:
    return b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[misc]


# How long a send may wait for the client: far beyond any test but the stalled client's.
STALL = 60.0


async def test_csv_sent_batch_by_batch_is_the_csv_of_the_whole_table() -> None:
    source = Batches(BATCHES)
    response = await streamed_response(
        StreamedTable("Sheet", COLUMNS, source()), TableFormat.CSV, "report", stall_seconds=STALL
    )
    assert isinstance(response, StreamingResponse)
    assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
    assert await body_of(response) == as_csv(whole())
    assert source.closed


async def test_a_csv_of_no_rows_is_its_header() -> None:
    response = await streamed_response(
        StreamedTable("Sheet", COLUMNS, Batches([])()),
        TableFormat.CSV,
        "report",
        stall_seconds=STALL,
    )
    assert isinstance(response, StreamingResponse)
    assert await body_of(response) == b"Lot,Quantity,Date,Time\r\n"


async def test_xlsx_written_batch_by_batch_is_the_sheet_of_the_whole_table(
    own_temporary_folder: Path,
) -> None:
    response = await streamed_response(
        StreamedTable("Sheet", COLUMNS, Batches(BATCHES)()),
        TableFormat.XLSX,
        "report",
        stall_seconds=STALL,
    )
    assert isinstance(response, StreamingResponse)
    assert left_in(own_temporary_folder) == []  # nameless once written: nothing left behind
    assert response.headers["content-disposition"] == 'attachment; filename="report.xlsx"'
    body = await body_of(response)
    assert response.headers["content-length"] == str(len(body))
    streamed = openpyxl.load_workbook(io.BytesIO(body))["Sheet"]
    at_once = openpyxl.load_workbook(io.BytesIO(as_xlsx([whole()])))["Sheet"]
    assert [[c.value for c in row] for row in streamed.iter_rows()] == [
        [c.value for c in row] for row in at_once.iter_rows()
    ]
    assert streamed.freeze_panes == at_once.freeze_panes == "A2"
    assert streamed.auto_filter.ref == at_once.auto_filter.ref == "A1:D4"
    assert [streamed.column_dimensions[c].width for c in "ABCD"] == [
        at_once.column_dimensions[c].width for c in "ABCD"
    ]


async def test_an_xlsx_too_large_for_a_sheet_is_refused_and_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, own_temporary_folder: Path
) -> None:
    monkeypatch.setattr(tables, "XLSX_MAX_DATA_ROWS", 2)
    source = Batches(BATCHES)
    with pytest.raises(TableTooLarge, match="3 rows do not fit in one sheet"):
        await streamed_response(
            StreamedTable("Sheet", COLUMNS, source()),
            TableFormat.XLSX,
            "report",
            stall_seconds=STALL,
        )
    assert left_in(own_temporary_folder) == []
    assert source.closed


async def test_a_client_gone_midway_lets_go_of_what_the_reader_holds_at_once() -> None:
    source = Batches([BATCHES[0]] * 50)
    response = await streamed_response(
        StreamedTable("Sheet", COLUMNS, source()), TableFormat.CSV, "report", stall_seconds=STALL
    )
    bodies = 0
    gone = asyncio.Event()

    async def send(message: Message) -> None:
        nonlocal bodies
        bodies += message["type"] == "http.response.body"
        if bodies == 3:  # the client stops reading, then goes
            gone.set()
            await asyncio.Event().wait()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}}
    await asyncio.wait_for(response(scope, receive, send), timeout=5)
    assert source.closed  # its snapshot let go now, not when the collector comes by


async def test_a_client_that_stays_but_takes_nothing_is_dropped_and_the_reader_closed() -> None:
    source = Batches([BATCHES[0]] * 50)
    response = await streamed_response(
        StreamedTable("Sheet", COLUMNS, source()), TableFormat.CSV, "report", stall_seconds=0.2
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the socket is full: a paused download

    async def receive() -> Message:
        await asyncio.Event().wait()  # connected all along
        raise AssertionError("unreachable")

    scope = {"type": "http", "asgi": {"spec_version": "2.3"}}
    await asyncio.wait_for(response(scope, receive, send), timeout=5)
    assert source.closed  # the export's slot and snapshot let go
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
