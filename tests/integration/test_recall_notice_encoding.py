"""The set-based notice path (`db.write_notices`, CloudEvents built by PostgreSQL) writes what
the contract model writes: for the same customer and shipments, its outbox row equals the
`RecallCustomerNotice` that services/recall/notices.py builds and `encode` encodes, field for
field once both are parsed as JSON (the event id and time aside): quantities' decimal text,
timestamps' format, null stripping, topic, key and headers included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest_asyncio

from services.recall import db
from services.recall.handlers import Recalls, notice_requests
from services.recall.notices import NoticeBuilder
from shared.contracts.envelope import OutgoingMessage
from shared.contracts.events import OrderShipped
from shared.runtime.database import MAX_MESSAGE_BYTES, Database, headers_from_json
from tests.integration.events import lot, shipment_of
from tests.integration.recall_database import SOURCE, issued_recall

LOT = lot("EQ-2026-01")  # SKU EQ
# Whole seconds and fractions; trailing zeros, integers and tiny amounts; nulls at every depth.
CUSTOMERS: dict[str, dict[str, Any]] = {
    "A-FULL": {
        "customer_id": "A-FULL",
        "name": "Épicerie « Zoë »",
        "email": "zoe@example.com",
        "phone": "+33 1 23 45 67 89",
        "address": {"line1": "1 rue du Quai", "line2": None, "city": "Lyon", "country": "FR"},
    },
    "B-BARE": {"customer_id": "B-BARE"},
    "C-NAME": {"customer_id": "C-NAME", "name": 'Quote " and \\ backslash', "email": None},
}
SHIPPED: dict[str, list[tuple[datetime, str]]] = {
    "A-FULL": [
        (datetime(2026, 1, 3, 8, 0, 0, tzinfo=UTC), "1.500"),
        (datetime(2026, 1, 3, 8, 0, 0, 120000, tzinfo=UTC), "12"),
    ],
    "B-BARE": [(datetime(2026, 1, 4, 23, 59, 59, 999999, tzinfo=UTC), "0.0001")],
    "C-NAME": [
        (datetime(2026, 1, 5, 0, 0, 0, 1, tzinfo=UTC), "1E+3"),
        (datetime(2026, 1, 5, 12, 30, tzinfo=UTC), "7.250000"),
    ],
}


def shipments(customer_id: str) -> list[OrderShipped]:
    return [
        shipment_of(
            CUSTOMERS[customer_id],
            LOT,
            quantity=Decimal(quantity),
            shipped_at=shipped_at,
            number=f"{customer_id}-{number}",
        )
        for number, (shipped_at, quantity) in enumerate(SHIPPED[customer_id])
    ]


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A recall database with the lot, its shipments, and an issued recall of it."""
    shipped = [event for customer in CUSTOMERS for event in shipments(customer)]
    reason = "Undeclared allergen: « noix »"
    async with issued_recall(database_url, Recalls(), LOT, shipped, reason=reason) as database:
        yield database


def comparable(
    topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
) -> Any:
    """A notice message as JSON, without what differs by design: its id and time."""
    event = json.loads(value)
    assert dict(headers)["ce_id"].decode() == event.pop("id")
    event.pop("time")
    named = [(name, raw.decode()) for name, raw in headers if name != "ce_id"]
    assert key is not None
    return {"topic": topic, "key": key.decode(), "headers": named, "event": event}


def model_built(message: OutgoingMessage) -> Any:
    return comparable(message.topic, message.key, message.value, list(message.headers))


async def test_the_sql_notice_equals_the_model_built_notice_field_for_field(
    database: Database,
) -> None:
    builder = NoticeBuilder(source=SOURCE, max_message_bytes=MAX_MESSAGE_BYTES)
    async with database.pool.acquire() as connection, connection.transaction():
        recall = await db.recall_with_pending_notices(connection)
        assert recall is not None
        chunk = await db.take_chunk(connection, recall.recall_id)
        assert chunk is not None
        left = await db.write_notices(
            connection,
            recall=recall,
            chunk=chunk,
            max_value_bytes=builder.value_budget_for_sql,
            max_shipments=None,
            source=SOURCE,
        )
        rows = await connection.fetch("SELECT topic, key, value, headers FROM outbox")
        requests = await notice_requests(connection, recall, sorted(CUSTOMERS))

    assert left == []
    from_sql = {
        json.loads(row["value"])["data"]["customer"]["customer_id"]: comparable(
            row["topic"], row["key"], row["value"], headers_from_json(row["headers"])
        )
        for row in rows
        if json.loads(row["value"])["type"] == "lottrace.recall-customer-notice.v1"
    }
    from_models = {}
    for request in requests:
        [notice] = builder.build(request)
        from_models[request.customer.customer_id] = model_built(notice.message)
    assert set(from_sql) == set(CUSTOMERS)
    for customer_id in CUSTOMERS:
        assert from_sql[customer_id] == from_models[customer_id], customer_id
    quantities = [s["quantity"] for s in from_sql["C-NAME"]["event"]["data"]["shipments"]]
    assert quantities == ["1000", "7.25"]
    times = [s["shipped_at"] for s in from_sql["A-FULL"]["event"]["data"]["shipments"]]
    assert times == ["2026-01-03T08:00:00Z", "2026-01-03T08:00:00.120000Z"]
    # The ids are drawn for the whole chunk at once: still one random UUID per notice.
    events = [json.loads(row["value"]) for row in rows]
    ids = [UUID(e["id"]) for e in events if e["type"] == "lottrace.recall-customer-notice.v1"]
    assert len(set(ids)) == len(ids) == len(CUSTOMERS)
    assert {event_id.version for event_id in ids} == {4}
