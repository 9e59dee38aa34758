"""Inventory's shipped batches against a real PostgreSQL: the lots a shipment names are locked
against other writers of their stock, the ones never seen created; a line shipped from
another lot than reserved gives its reservation back, the lot it emptied gives up what it no
longer holds, and the orders waiting take the stock freed, oldest first."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from services.inventory import db
from services.inventory.handlers import Inventory
from services.inventory.records import LotFacts
from shared.runtime.database import Database, UnitOfWork
from tests.integration.events import incoming
from tests.integration.inventory_database import migrated_inventory
from tests.integration.test_inventory import order, received, shipped


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """Inventory's database, migrated, one connection."""
    async with migrated_inventory(database_url) as database:
        yield database


async def emitted(database: Database, topic: str) -> list[dict[str, Any]]:
    """The data of the events inventory's outbox holds for `topic`, in the order emitted."""
    rows = await database.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY id", topic)
    return [json.loads(row["value"])["data"] for row in rows]


async def test_a_shipment_locks_its_known_lots_and_creates_the_unknown_ones(
    database_url: str, database: Database
) -> None:
    """While a shipment is applied, no other transaction may take the lots it names that were
    known (they stay as they were); those it names first are created as it describes them."""
    known, unknown = uuid.uuid4(), uuid.uuid4()
    other = await asyncpg.connect(database_url)
    try:
        async with database.transaction() as unit:
            await db.ensure_lots(unit.connection, [LotFacts(known, "KIWI", "K-1", "EA")])
        async with database.transaction() as unit:
            await db.ensure_and_lock_lots(
                unit.connection,
                [LotFacts(known, "KIWI", "renamed", "KG"), LotFacts(unknown, "FIG", "F-1", "EA")],
            )
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await other.execute("SELECT 1 FROM lots WHERE lot_id = $1 FOR UPDATE NOWAIT", known)
        rows = await other.fetch("SELECT lot_id, sku, lot_code, uom FROM lots ORDER BY sku")
        assert [tuple(row) for row in rows] == [
            (unknown, "FIG", "F-1", "EA"),
            (known, "KIWI", "K-1", "EA"),
        ]
    finally:
        await other.close()


async def test_a_line_shipped_from_another_lot_frees_its_reservation_for_the_oldest_order(
    database: Database,
) -> None:
    """O1 holds the early lot and ships the late one instead, all of it: O1's reservation of
    the early lot goes ("shipped otherwise"), O2's of the emptied late lot goes too ("shipped
    beyond reservations"), and the early lot's stock goes to O2, the oldest order waiting,
    before O3. O1 is closed, and the late lot is announced depleted."""
    inventory = Inventory()
    early, late = received("PEAR", 10, days=30), received("PEAR", 10, days=60)
    for batch in (
        [early, late],
        [order("O1", "PEAR", 10), order("O2", "PEAR", 10)],
        [order("O3", "PEAR", 5)],
        [shipped("O1", "PEAR", late.lot_id, 10)],
    ):
        await database.run(partial(_apply, inventory, batch))

    held = await database.fetch("SELECT order_id, lot_id, quantity FROM reservations")
    assert [tuple(row) for row in held] == [("O2", early.lot_id, 10)]
    stock = await database.fetch(
        "SELECT lot_id, on_hand, reserved, shipped FROM stock ORDER BY on_hand"
    )
    assert [tuple(row) for row in stock] == [(late.lot_id, 0, 0, 10), (early.lot_id, 10, 10, 0)]
    statuses = await database.fetch("SELECT order_id, status FROM orders ORDER BY order_id")
    assert [tuple(row) for row in statuses] == [("O1", "closed"), ("O2", "open"), ("O3", "open")]
    released = await database.fetch(
        "SELECT order_id, lot_id, quantity, detail FROM lot_history"
        " WHERE change = 'released' ORDER BY id"
    )
    assert [tuple(row) for row in released] == [
        ("O1", early.lot_id, 10, "shipped otherwise"),
        ("O2", late.lot_id, 10, "shipped beyond reservations"),
    ]
    latest = {data["order_id"]: data for data in await emitted(database, "lot-allocated")}
    assert [(a["lot_id"], a["quantity"]) for a in latest["O2"]["allocations"]] == [
        (str(early.lot_id), "10")
    ]
    assert [b["quantity"] for b in latest["O3"]["backordered"]] == ["5"]
    changed = await emitted(database, "lot-status-changed")
    assert [(c["lot_id"], c["status"]) for c in changed] == [(str(late.lot_id), "depleted")]


async def _apply(inventory: Inventory, events: list[Any], unit: UnitOfWork) -> None:
    """Apply one batch of events of one type, as the consumer would."""
    handler = dict(inventory.handlers())[type(events[0])]
    await handler(unit, [incoming(event) for event in events])
