"""What the effectiveness check counts of each customer's units: shipped, received back, and
the latest figure of each kind the customer reported, even when a later report left it out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest_asyncio

from services.recall import effectiveness
from services.recall.handlers import Recalls
from services.recall.records import LotUnits
from services.recall.responses import on_goods_returned, on_recall_responses
from shared.contracts.events import GoodsReturned, RecallResponse
from shared.runtime.database import Database
from tests.integration.events import incoming, lot, shipment_of
from tests.integration.recall_database import issued_recall

CHEESE = lot("CHEESE-7")
EARLIER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def recalled(database_url: str) -> AsyncIterator[Database]:
    """C1, C2 and C3 each shipped 10 units of the recalled cheese."""
    shipments = [shipment_of({"customer_id": c}, CHEESE, quantity=10) for c in ("C1", "C2", "C3")]
    async with issued_recall(
        database_url, Recalls(), CHEESE, shipments, reason="listeria"
    ) as database:
        yield database


def report(
    recall_id: str, response_id: str, customer_id: str, at: datetime, **units: str
) -> RecallResponse:
    return RecallResponse(
        response_id=response_id, recall_id=recall_id, customer_id=customer_id,
        responded_at=at, kind="units-reported", units=[{"lot_id": CHEESE.lot_id, **units}],
    )  # fmt: skip


async def units_by_customer(database: Database, recall_id: str) -> dict[str, LotUnits]:
    async with database.pool.acquire() as connection, connection.transaction():
        groups = await effectiveness.groups_of(connection, recall_id)
    return {customer: units for g in groups for customer in g.customers for units in g.lots}


async def test_each_figure_is_the_latest_reported_and_returns_count_without_a_report(
    recalled: Database,
) -> None:
    async with recalled.pool.acquire() as connection:
        recall_id = str(await connection.fetchval("SELECT recall_id FROM recalls"))
    returned = GoodsReturned(
        return_id="RET-C3", customer={"customer_id": "C3"}, returned_at=EARLIER,
        lines=[{"line_no": 1, "sku": "CHEESE", "lot_id": CHEESE.lot_id, "quantity": 4,
                "reason": "recall"}],
    )  # fmt: skip
    later = EARLIER + timedelta(hours=1)
    reports = [
        # C1: the later report leaves `destroyed` out, so the earlier one still says it.
        report(recall_id, "R-1A", "C1", EARLIER, destroyed="4", on_hand="6"),
        report(recall_id, "R-1B", "C1", later, on_hand="2"),
        # C2: two reports at one moment; the greater response id is taken as the later.
        report(recall_id, "R-2B", "C2", EARLIER, on_hand="3"),
        report(recall_id, "R-2A", "C2", EARLIER, on_hand="5"),
    ]
    async with recalled.transaction() as unit:
        await on_recall_responses(unit, [incoming(r) for r in reports])
        await on_goods_returned(unit, [incoming(returned)])

    units = await units_by_customer(recalled, recall_id)

    ten, none = Decimal(10), None
    assert units["C1"] == LotUnits(CHEESE.lot_id, ten, Decimal(0), none, Decimal(4), Decimal(2))
    assert units["C2"] == LotUnits(CHEESE.lot_id, ten, Decimal(0), none, none, Decimal(3))
    assert units["C3"] == LotUnits(CHEESE.lot_id, ten, Decimal(4), none, none, none)
