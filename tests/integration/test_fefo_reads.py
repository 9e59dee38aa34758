"""Allocation reads and locks only the lots FEFO may take, against a real PostgreSQL: what it
allocates is what it would from every allocatable lot, the lots after those that cover a
batch stay free for other writers, and stock taken between the choice of lots and their locks
makes it read the SKU whole rather than come up short."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest_asyncio

from lottrace.infra import wait_until
from services.inventory import domain
from services.inventory.handlers import Inventory, allocatable_for, locked_for
from shared.contracts.events import GoodsReceived
from shared.runtime.database import Connection, Database
from tests.integration.events import incoming
from tests.integration.inventory_database import migrated_inventory
from tests.integration.test_inventory import received

TODAY = datetime.now(UTC).date()


@pytest_asyncio.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with migrated_inventory(database_url) as database:
        yield database


async def receive(database: Database, *receipts: GoodsReceived) -> None:
    async with database.transaction() as unit:
        await Inventory().on_goods_received(unit, [incoming(receipt) for receipt in receipts])


def demand(
    order_id: str, sku: str, quantity: int, *, uom: str = "EA", shelf_life: int = 0
) -> domain.Demand:
    return domain.Demand(order_id, 1, sku, uom, Decimal(quantity), shelf_life)


async def every_lot(connection: Connection, demands: list[domain.Demand]) -> list[domain.StockLot]:
    """Every allocatable lot of the demands' SKUs, as allocation read them before."""
    needs = [domain.FefoNeed(d.sku, d.uom, None, TODAY) for d in demands]
    return await locked_for(connection, needs, today=TODAY)


async def test_fefo_allocates_from_the_lots_read_as_from_every_lot(database: Database) -> None:
    """Random stock (two units, short-dated lots, lots without expiry, lots received at the same
    instant, lots at several locations, some at the unpickable RETURNS) and random demands with
    shelf lives, some of nothing: the allocation, its shortfalls and their reasons are the same
    as from every allocatable lot."""
    rng = random.Random(20261208)
    skus = [f"FEFO-{n}" for n in range(12)]
    instants = [datetime(2026, 11, 1, 8, tzinfo=UTC), datetime(2026, 11, 2, 8, tzinfo=UTC)]
    receipts: list[GoodsReceived] = []
    for sku in skus:
        for _ in range(rng.randint(0, 6)):
            lot = received(sku, 1, days=rng.choice([None, 1, 3, 10, 30, 90])).model_copy(
                update={"uom": rng.choice(["EA", "EA", "KG"]), "received_at": rng.choice(instants)}
            )
            for location in rng.sample(["MAIN", "B-2", "RETURNS"], rng.randint(1, 2)):
                quantity = rng.choice([5, 20, 100])
                receipts.append(
                    lot.model_copy(
                        update={
                            "receipt_id": f"R-{len(receipts)}",
                            "location": location,
                            "quantity": quantity,
                        }
                    )
                )
    await receive(database, *receipts)
    for round_no in range(30):
        demands = [
            demand(
                f"O-{round_no}-{n}",
                rng.choice(skus),
                rng.choice([0, 1, 4, 15, 60, 250]),
                uom=rng.choice(["EA", "EA", "KG"]),
                shelf_life=rng.choice([0, 0, 5, 20, 60]),
            )
            for n in range(rng.randint(1, 8))
        ]
        async with database.transaction() as unit:
            read = await allocatable_for(unit.connection, demands, today=TODAY)
            every = await every_lot(unit.connection, demands)
        assert domain.allocate(demands, read, today=TODAY) == domain.allocate(
            demands, every, today=TODAY
        ), demands
        assert {(lot.lot_id, lot.location) for lot in read} <= {
            (lot.lot_id, lot.location) for lot in every
        }


async def test_lots_after_those_that_cover_the_batch_stay_free(
    database: Database, database_url: str
) -> None:
    """While an allocation's transaction is open, a count or a hold can take the later lots of
    its SKU at once; only the first FEFO lot, which covers the order, is locked."""
    first, second, third = (received("PEAR", 100, days=days) for days in (10, 20, 30))
    await receive(database, first, second, third)
    other = await asyncpg.connect(database_url)
    try:
        async with database.transaction() as unit:
            read = await allocatable_for(unit.connection, [demand("O-1", "PEAR", 40)], today=TODAY)
            assert [lot.lot_id for lot in read] == [first.lot_id]
            for later in (second.lot_id, third.lot_id):
                await other.execute(
                    "SELECT 1 FROM stock WHERE lot_id = $1 FOR UPDATE NOWAIT", later
                )
    finally:
        await other.close()


async def test_stock_taken_before_the_locks_makes_allocation_read_the_sku_whole(
    database: Database, database_url: str
) -> None:
    """Another transaction holds the first lot and takes most of it; the allocation chose its
    lots before that committed and locked them after. It reads the SKU again, whole, and
    takes the rest from the next lot: no shortfall where stock is there."""
    first, second = received("PLUM", 100, days=10), received("PLUM", 100, days=20)
    await receive(database, first, second)
    taker = await asyncpg.connect(database_url)
    try:
        taking = taker.transaction()
        await taking.start()
        await taker.execute(
            "UPDATE stock SET reserved = reserved + 90 WHERE lot_id = $1", first.lot_id
        )
        order = [demand("O-2", "PLUM", 50)]

        async def allocated() -> domain.AllocationResult:
            async with database.transaction() as unit:
                lots = await allocatable_for(unit.connection, order, today=TODAY)
                return domain.allocate(order, lots, today=TODAY)

        allocating = asyncio.create_task(allocated())
        await wait_until(
            lambda: waits_on_a_lock(taker), timeout=10, what="the allocation waits on the lot"
        )
        await taking.commit()
        result = await asyncio.wait_for(allocating, 10)
    finally:
        await taker.close()
    assert result.shortfalls == []
    assert sorted((r.lot_id, r.quantity) for r in result.reserves) == sorted(
        [(first.lot_id, Decimal(10)), (second.lot_id, Decimal(40))]
    )


async def waits_on_a_lock(connection: asyncpg.Connection) -> bool:
    waiting = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return bool(waiting)
