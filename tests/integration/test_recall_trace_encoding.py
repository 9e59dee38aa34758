"""The forward trace's shipment lines, written as JSON by PostgreSQL (`db.shipments_of_lots`),
are byte for byte what `TraceShipment.model_dump_json` writes for the same rows: escapes,
null names, quantities as stored, timestamps' format."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from pydantic import TypeAdapter
from starlette.requests import Request

from services.recall import api
from services.recall.handlers import Recalls
from services.recall.schemas import TraceShipment
from shared.errors import NotFound
from shared.runtime.database import Database
from tests.integration.events import lot, shipment_of
from tests.integration.recall_database import issued_recall

LOT = lot("TR-2026-01")
CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "A-FULL", "name": 'Épicerie « Zoë », "quoted" \\ tab\there\u0001'},
    {"customer_id": "B-BARE"},
]
SHIPPED = [
    (CUSTOMERS[0], datetime(2026, 1, 3, 8, 0, 0, tzinfo=UTC), "1.500"),
    (CUSTOMERS[0], datetime(2026, 1, 3, 8, 0, 0, 120000, tzinfo=UTC), "12"),
    (CUSTOMERS[1], datetime(2026, 1, 4, 23, 59, 59, 999999, tzinfo=UTC), "0.0001"),
]
# Stored as a quantity never validated (an import, an older row): its scale as it is.
RAW_QUANTITIES = ["2.500", "1000", "0.10"]


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    shipped = [
        shipment_of(customer, LOT, quantity=Decimal(quantity), shipped_at=at, number=f"T{n}")
        for n, (customer, at, quantity) in enumerate(SHIPPED)
    ]
    async with issued_recall(database_url, Recalls(), LOT, shipped, reason="test") as database:
        async with database.pool.acquire() as connection:
            await connection.execute(
                """
                INSERT INTO shipment_lines (shipment_id, line_no, lot_id, order_id, customer_id,
                                            sku, lot_code, quantity, uom, shipped_at)
                SELECT 'SH-RAW-' || n, 1, $1, 'SO-RAW-' || n, 'NOBODY', 'TR', 'TR-2026-01',
                       q::numeric, 'KG', '2026-01-05T00:00:00.000001Z'
                FROM unnest($2::text[]) WITH ORDINALITY AS r(q, n)
                """,
                LOT.lot_id,
                RAW_QUANTITIES,
            )
        yield database


def _request(database: Database) -> Request:
    runtime = SimpleNamespace(database=database)
    return Request({"type": "http", "app": SimpleNamespace(state=SimpleNamespace(runtime=runtime))})


async def _model_built(database: Database) -> bytes:
    """The shipment lines as the route wrote them before: a TraceShipment per row."""
    async with database.pool.acquire() as connection:
        rows = await connection.fetch(
            """
            SELECT s.shipment_id, s.order_id, s.customer_id, c.name AS customer_name,
                   s.shipped_at, s.sku, s.lot_id, s.lot_code, s.quantity, s.uom
            FROM shipment_lines s LEFT JOIN customers c USING (customer_id)
            ORDER BY s.shipped_at, s.shipment_id, s.line_no
            """
        )
    shipments = [TraceShipment.from_row(row) for row in rows]
    return TypeAdapter(list[TraceShipment]).dump_json(shipments)


async def test_the_sql_shipment_lines_equal_the_model_built_ones_byte_for_byte(
    database: Database,
) -> None:
    response = await api.trace_forward(LOT.lot_id, _request(database), shipments_limit=100)
    body = bytes(response.body)
    expected = await _model_built(database)
    assert b'"shipments":' + expected + b',"customers":' in body
    trace = json.loads(body)
    assert len(trace["shipments"]) == len(SHIPPED) + len(RAW_QUANTITIES)
    assert [s["quantity"] for s in trace["shipments"][-3:]] == RAW_QUANTITIES
    assert trace["shipments"][2]["customer_name"] is None
    assert [c["customer_id"] for c in trace["customers"]] == ["A-FULL", "B-BARE", "NOBODY"]


async def test_a_trace_without_shipments_keeps_an_empty_list(database: Database) -> None:
    response = await api.trace_forward(LOT.lot_id, _request(database), shipments_limit=0)
    trace = json.loads(bytes(response.body))
    assert trace["shipments"] == []
    assert trace["totals"]["shipment_lines"] == len(SHIPPED) + len(RAW_QUANTITIES)


async def test_an_unknown_lot_is_not_found_either_way(database: Database) -> None:
    unknown = uuid.uuid4()
    for trace in (
        api.trace_forward(unknown, _request(database), shipments_limit=10),
        api.trace_backward(unknown, _request(database)),
    ):
        with pytest.raises(NotFound) as refused:
            await trace
        assert refused.value.code == "lot_not_found"
