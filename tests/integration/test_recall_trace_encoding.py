"""The forward trace's shipment lines and customers, read as plain columns
(`db.trace_shipments`) and encoded without a model each, are byte for byte what the route's
models wrote for the same rows:
escapes, null names, quantities as stored, timestamps' format, customers by id with their
lot codes in order of first shipment."""

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
from services.recall.schemas import TraceCustomer, TraceShipment
from shared.errors import NotFound
from shared.runtime.database import Database
from tests.integration.events import incoming, lot, shipment_of
from tests.integration.recall_database import issued_recall

LOT = lot("TR-2026-01")
JUICE = lot("TRJ-2026-01", inputs=[LOT])  # made from LOT: in LOT's forward trace
CUSTOMERS: list[dict[str, Any]] = [
    {"customer_id": "A-FULL", "name": 'Épicerie « Zoë », "quoted" \\ tab\there\u0001'},
    {"customer_id": "B-BARE"},
]
SHIPPED = [
    (CUSTOMERS[0], datetime(2026, 1, 3, 8, 0, 0, tzinfo=UTC), "1.500"),
    (CUSTOMERS[0], datetime(2026, 1, 3, 8, 0, 0, 120000, tzinfo=UTC), "12"),
    (CUSTOMERS[1], datetime(2026, 1, 4, 23, 59, 59, 999999, tzinfo=UTC), "0.0001"),
]
# B-BARE gets the juice first, A-FULL after LOT: lot codes in order of first shipment.
JUICE_SHIPPED = [
    (CUSTOMERS[1], datetime(2026, 1, 2, 9, 0, tzinfo=UTC)),
    (CUSTOMERS[0], datetime(2026, 1, 6, 9, 0, tzinfo=UTC)),
]
# Stored as a quantity never validated (an import, an older row): its scale as it is.
RAW_QUANTITIES = ["2.500", "1000", "0.10"]


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    shipped = [
        shipment_of(customer, LOT, quantity=Decimal(quantity), shipped_at=at, number=f"T{n}")
        for n, (customer, at, quantity) in enumerate(SHIPPED)
    ]
    shipped += [
        shipment_of(customer, JUICE, shipped_at=at, number=f"J{n}")
        for n, (customer, at) in enumerate(JUICE_SHIPPED)
    ]
    recalls = Recalls()
    async with issued_recall(database_url, recalls, LOT, shipped, reason="test") as database:
        async with database.transaction() as unit:
            await recalls.on_goods_received(unit, [incoming(JUICE)])
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


async def _model_built(database: Database) -> tuple[bytes, bytes]:
    """The shipment lines and customers as the route wrote them before: a TraceShipment per
    row, a TraceCustomer per customer with its lot codes in order of first shipment."""
    async with database.pool.acquire() as connection:
        rows = await connection.fetch(
            """
            SELECT s.shipment_id, s.order_id, s.customer_id, c.name AS customer_name,
                   s.shipped_at, s.sku, s.lot_id, s.lot_code, s.quantity, s.uom
            FROM shipment_lines s LEFT JOIN customers c USING (customer_id)
            ORDER BY s.shipped_at, s.shipment_id, s.line_no
            """
        )
    customers: dict[str, TraceCustomer] = {}
    for row in rows:
        customer = customers.setdefault(
            row["customer_id"],
            TraceCustomer(customer_id=row["customer_id"], name=row["customer_name"], lots=[]),
        )
        if row["lot_code"] not in customer.lots:
            customer.lots.append(row["lot_code"])
    shipments = [TraceShipment.from_row(row) for row in rows]
    return (
        TypeAdapter(list[TraceShipment]).dump_json(shipments),
        TypeAdapter(list[TraceCustomer]).dump_json([customers[k] for k in sorted(customers)]),
    )


async def test_the_sql_shipment_lines_equal_the_model_built_ones_byte_for_byte(
    database: Database,
) -> None:
    response = await api.trace_forward(LOT.lot_id, _request(database), shipments_limit=100)
    body = bytes(response.body)
    shipments, customers = await _model_built(database)
    assert b'"shipments":' + shipments + b',"customers":' + customers + b',"totals":' in body
    trace = json.loads(body)
    lines = len(SHIPPED) + len(JUICE_SHIPPED) + len(RAW_QUANTITIES)
    assert len(trace["shipments"]) == lines
    assert [s["quantity"] for s in trace["shipments"] if s["uom"] == "KG"] == RAW_QUANTITIES
    assert [c["customer_id"] for c in trace["customers"]] == ["A-FULL", "B-BARE", "NOBODY"]
    assert [c["lots"] for c in trace["customers"][:2]] == [
        ["TR-2026-01", "TRJ-2026-01"],
        ["TRJ-2026-01", "TR-2026-01"],
    ]
    assert trace["customers"][1]["name"] is None
    assert trace["totals"] == {
        "lots": 2,
        "customers": 3,
        "shipment_lines": lines,
        "shipments_truncated": False,
    }


async def test_a_trace_without_shipments_keeps_an_empty_list(database: Database) -> None:
    response = await api.trace_forward(LOT.lot_id, _request(database), shipments_limit=0)
    trace = json.loads(bytes(response.body))
    assert trace["shipments"] == trace["customers"] == []
    lines = len(SHIPPED) + len(JUICE_SHIPPED) + len(RAW_QUANTITIES)
    assert trace["totals"]["shipment_lines"] == lines


async def test_a_truncated_trace_keeps_the_first_lines_and_counts_them_all(
    database: Database,
) -> None:
    response = await api.trace_forward(LOT.lot_id, _request(database), shipments_limit=2)
    trace = json.loads(bytes(response.body))
    first_two = [JUICE_SHIPPED[0][1], SHIPPED[0][1]]  # the earliest, juice then the lot itself
    assert [s["shipped_at"] for s in trace["shipments"]] == [
        at.isoformat().replace("+00:00", "Z") for at in first_two
    ]
    assert [(c["customer_id"], c["lots"]) for c in trace["customers"]] == [
        ("A-FULL", ["TR-2026-01"]),
        ("B-BARE", ["TRJ-2026-01"]),
    ]
    lines = len(SHIPPED) + len(JUICE_SHIPPED) + len(RAW_QUANTITIES)
    assert trace["totals"] == {
        "lots": 2,
        "customers": 2,
        "shipment_lines": lines,
        "shipments_truncated": True,
    }


async def test_an_unknown_lot_is_not_found_either_way(database: Database) -> None:
    unknown = uuid.uuid4()
    for trace in (
        api.trace_forward(unknown, _request(database), shipments_limit=10),
        api.trace_backward(unknown, _request(database)),
    ):
        with pytest.raises(NotFound) as refused:
            await trace
        assert refused.value.code == "lot_not_found"
