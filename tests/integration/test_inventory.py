"""Inventory against a real broker and PostgreSQL: stock per lot and location, FEFO
allocation from events, holds, counts, backorders filled by arriving stock, and two
replicas in one consumer group that never allocate the same unit twice."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import Settings, create_app
from services.inventory.handlers import Inventory
from shared.contracts.events import GoodsReceived, LotInput, OrderPlaced, OrderShipped, RecallIssued
from shared.runtime.auth import Role
from shared.runtime.database import Database, UnitOfWork
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from tests.integration.events import incoming
from tests.integration.service_apps import ADMIN_KEY, api_keys, quick_settings, running
from tests.integration.service_apps import until_served as _until
from tests.kafka_helpers import committed_offsets, end_offsets, publish, read_topic

TODAY = date.today()
INVENTORY_MIGRATIONS = Path(create_app.__code__.co_filename).parent / "migrations"


def lot_code_of(sku: str, lot_id: uuid.UUID) -> str:
    """The code `received` gives a lot: its SKU and the start of its id."""
    return f"{sku}-{str(lot_id)[:6]}"


def received(
    sku: str,
    quantity: int,
    *,
    days: int | None,
    location: str = "MAIN",
    lot_id: uuid.UUID | None = None,
) -> GoodsReceived:
    lot = lot_id or uuid.uuid4()
    return GoodsReceived(
        receipt_id=f"R-{uuid.uuid4().hex[:8]}",
        lot_id=lot,
        lot_code=lot_code_of(sku, lot),
        sku=sku,
        quantity=quantity,
        location=location,
        received_at=datetime.now(UTC),
        expiry_date=TODAY + timedelta(days=days) if days is not None else None,
    )


def order(order_id: str, sku: str, quantity: int, *, shelf_life: int = 0) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer={"customer_id": f"C-{order_id}"},
        lines=[{"line_no": 1, "sku": sku, "quantity": quantity}],
        min_remaining_shelf_life_days=shelf_life,
    )


def shipped(order_id: str, sku: str, lot_id: uuid.UUID, quantity: int) -> OrderShipped:
    """`quantity` units of a lot `received` made, shipped on line 1 of `order_id`."""
    line = {
        "line_no": 1,
        "sku": sku,
        "lot_id": lot_id,
        "lot_code": lot_code_of(sku, lot_id),
        "quantity": quantity,
    }
    return OrderShipped(
        shipment_id=f"SH-{uuid.uuid4().hex[:8]}",
        order_id=order_id,
        customer={"customer_id": f"C-{order_id}"},
        shipped_at=datetime.now(UTC),
        lines=[line],
    )


async def stocked(
    client: httpx.AsyncClient, bootstrap: str, sku: str, quantity: int, *, days: Sequence[int]
) -> list[uuid.UUID]:
    """New lots of `quantity` units of `sku`, one expiring in each of `days`, once inventory
    holds them all."""
    lots = [uuid.uuid4() for _ in days]
    expiries = zip(days, lots, strict=True)
    await publish(bootstrap, *(received(sku, quantity, days=d, lot_id=lot) for d, lot in expiries))
    for lot in lots:
        await _until(client, f"/lots/{lot}", lambda body: body["on_hand"] == str(quantity))
    return lots


def inventory_app(database_url: str, broker: TansuBroker) -> Any:
    # The admin key is named after the QA person whose holds the history records.
    qa_anna = api_keys(("qa-anna", ADMIN_KEY, (Role.ADMIN,)))
    settings = quick_settings(Settings, database_url, broker, api_keys=qa_anna)
    return create_app(settings)


@pytest_asyncio.fixture
async def inventory(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with running(inventory_app(database_url, broker)) as client:
        yield client


async def latest_allocations(bootstrap: str, *, orders: int) -> dict[str, dict[str, Any]]:
    """The newest allocation of each order, as fulfillment would see it."""
    latest: dict[str, dict[str, Any]] = {}

    async def complete() -> bool:
        for record in await read_topic(bootstrap, "lot-allocated", timeout=10):
            data = json.loads(record.value)["data"]
            seen = latest.get(data["order_id"])
            if seen is None or data["revision"] > seen["revision"]:
                latest[data["order_id"]] = data
        return len(latest) >= orders

    await wait_until(complete, timeout=30, what=f"allocations of {orders} orders")
    return latest


async def test_orders_are_allocated_fefo_across_lots_and_locations(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    soon, later, undated = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish(
        broker.bootstrap_servers,
        received("OJ", 3, days=10, lot_id=soon, location="DOCK-1"),
        received("OJ", 4, days=10, lot_id=soon, location="DOCK-2"),  # same lot, another place
        received("OJ", 10, days=40, lot_id=later),
        received("OJ", 10, days=None, lot_id=undated),
    )
    lot = await _until(inventory, f"/lots/{soon}", lambda body: body["on_hand"] == "7")
    assert {p["location"]: p["on_hand"] for p in lot["locations"]} == {"DOCK-1": "3", "DOCK-2": "4"}

    await publish(broker.bootstrap_servers, order("SO-1", "OJ", 9))
    allocation = (await latest_allocations(broker.bootstrap_servers, orders=1))["SO-1"]
    taken = {(a["lot_id"], a["location"]): a["quantity"] for a in allocation["allocations"]}
    assert taken == {
        (str(soon), "DOCK-1"): "3",
        (str(soon), "DOCK-2"): "4",
        (str(later), "MAIN"): "2",
    }
    assert allocation["backordered"] == []

    stock = (await inventory.get("/stock", params={"sku": "OJ"})).json()
    assert [row["lot_id"] for row in stock] == [str(soon), str(later), str(undated)]  # FEFO order
    assert [row["available"] for row in stock] == ["0", "8", "10"]


async def test_an_order_shows_its_lots_in_the_order_its_allocation_lists_them(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    # Same expiry: the lot received first ships first, though its id sorts after the other's.
    received_late_id, received_first_id = sorted((uuid.uuid4(), uuid.uuid4()))
    received_first = received("JAM", 2, days=20, lot_id=received_first_id)
    received_late = received("JAM", 2, days=20, lot_id=received_late_id).model_copy(
        update={"received_at": received_first.received_at + timedelta(minutes=5)}
    )
    await publish(broker.bootstrap_servers, received_first, received_late)
    for lot in (received_first_id, received_late_id):
        await _until(inventory, f"/lots/{lot}", lambda body: body["on_hand"] == "2")

    await publish(broker.bootstrap_servers, order("SO-JAM", "JAM", 3))
    allocation = (await latest_allocations(broker.bootstrap_servers, orders=1))["SO-JAM"]
    shown = await _until(inventory, "/orders/SO-JAM", lambda body: len(body["reservations"]) == 2)

    in_event = [(a["lot_id"], a["quantity"]) for a in allocation["allocations"]]
    assert in_event == [(str(received_first_id), "2"), (str(received_late_id), "1")]
    assert [(r["lot_id"], r["quantity"]) for r in shown["reservations"]] == in_event


async def test_short_dated_stock_is_not_allocated_and_a_backorder_fills_when_stock_arrives(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    await publish(bootstrap, received("MILK", 10, days=3))
    await publish(bootstrap, order("SO-2", "MILK", 4, shelf_life=7))
    first = (await latest_allocations(bootstrap, orders=1))["SO-2"]
    assert first["allocations"] == []
    assert first["backordered"] == [
        {"line_no": 1, "sku": "MILK", "quantity": "4", "uom": "EA", "reason": "short_dated"}
    ]
    fresh = uuid.uuid4()
    await publish(bootstrap, received("MILK", 10, days=30, lot_id=fresh))

    async def filled() -> bool:
        allocation = (await latest_allocations(bootstrap, orders=1))["SO-2"]
        return bool(allocation["allocations"])

    await wait_until(filled, timeout=30, what="backorder filled")
    allocation = (await latest_allocations(bootstrap, orders=1))["SO-2"]
    assert [(a["lot_id"], a["quantity"]) for a in allocation["allocations"]] == [(str(fresh), "4")]
    assert allocation["backordered"] == []


async def test_a_hold_moves_reservations_to_other_lots_and_release_makes_the_lot_available(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    first, second = await stocked(inventory, bootstrap, "JAM", 5, days=(20, 40))
    await publish(bootstrap, order("SO-3", "JAM", 3))
    await _until(inventory, f"/lots/{first}", lambda body: body["reserved"] == "3")

    held = await inventory.post(f"/lots/{first}/hold", json={"reason": "mould seen"})
    assert held.status_code == 200, held.text
    assert held.json()["status"] == "quarantined"
    assert held.json()["reserved"] == "0"
    moved = await _until(inventory, "/orders/SO-3", lambda body: body["revision"] >= 2)
    assert [(r["lot_id"], r["quantity"]) for r in moved["reservations"]] == [(str(second), "3")]
    history = (await inventory.get(f"/lots/{first}/history")).json()
    assert [(h["change"], h["cause"]) for h in history][-2:] == [
        ("hold", "user:qa-anna"),
        ("released", "user:qa-anna"),
    ]
    released = await inventory.post(f"/lots/{first}/release", json={"reason": "lab clear"})
    assert released.json()["status"] == "available"
    assert released.json()["available"] == "5"


async def test_lots_made_from_a_recalled_lot_are_recalled_whichever_arrives_first(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    """Juice pressed from a recalled apple lot is never allocated: made after the recall, it
    is recalled on receipt; made before it (the recall service had not seen it yet), the recall
    reaches it through the genealogy inventory keeps, and its reservations go."""
    bootstrap = broker.bootstrap_servers
    apples, juice_before, juice_after = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish(
        bootstrap,
        received("APPLE", 100, days=30, lot_id=apples),
        made_from(apples, "JUICE", 10, lot_id=juice_before),
    )
    await _until(inventory, f"/lots/{juice_before}", lambda body: body["on_hand"] == "10")
    await publish(bootstrap, order("SO-J1", "JUICE", 4))
    await _until(inventory, f"/lots/{juice_before}", lambda body: body["reserved"] == "4")

    await publish(bootstrap, recall_of(apples, "RC-APPLE"))  # names the apples only
    withdrawn = await _until(inventory, f"/lots/{juice_before}", _recalled)
    assert withdrawn["reserved"] == "0"
    backordered = await _until(inventory, "/orders/SO-J1", lambda body: body["revision"] >= 2)
    assert backordered["reservations"] == []

    await publish(bootstrap, made_from(apples, "JUICE", 10, lot_id=juice_after))
    await _until(inventory, f"/lots/{juice_after}", _recalled)
    await publish(bootstrap, order("SO-J2", "JUICE", 1))
    allocation = (await latest_allocations(bootstrap, orders=2))["SO-J2"]
    assert allocation["allocations"] == []
    history = (await inventory.get(f"/lots/{juice_after}/history")).json()
    assert ("recalled", f"RC-APPLE: made from recalled lot {apples}") in [
        (h["change"], h["detail"]) for h in history
    ]

    # Nectar made from juice whose own receipt inventory has not seen yet: when that juice
    # arrives, made from the recalled apples, the recall reaches the nectar too.
    juice_late, nectar = uuid.uuid4(), uuid.uuid4()
    await publish(bootstrap, made_from(juice_late, "NECTAR", 5, lot_id=nectar, input_sku="JUICE"))
    await _until(inventory, f"/lots/{nectar}", lambda body: body["on_hand"] == "5")
    await publish(bootstrap, made_from(apples, "JUICE", 10, lot_id=juice_late))
    await _until(inventory, f"/lots/{juice_late}", _recalled)
    await _until(inventory, f"/lots/{nectar}", _recalled)


def made_from(
    input_lot: uuid.UUID, sku: str, quantity: int, *, lot_id: uuid.UUID, input_sku: str = "APPLE"
) -> GoodsReceived:
    ingredient = LotInput(
        lot_id=input_lot, lot_code=lot_code_of(input_sku, input_lot), sku=input_sku, quantity=5
    )
    return received(sku, quantity, days=20, lot_id=lot_id).model_copy(
        update={"inputs": [ingredient]}
    )


def recall_of(lot_id: uuid.UUID, recall_id: str) -> RecallIssued:
    return RecallIssued(
        recall_id=recall_id,
        issued_at=datetime.now(UTC),
        reason="patulin above limit",
        scope={"lot_ids": [lot_id]},
        affected_lots=[
            {"lot_id": lot_id, "lot_code": lot_code_of("APPLE", lot_id), "sku": "APPLE"}
        ],
        affected_customer_count=0,
        shipped_quantity=0,
    )


def _recalled(body: dict[str, Any]) -> bool:
    return bool(body["status"] == "recalled")


async def test_counts_adjust_stock_per_location_and_never_below_zero(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    lot = uuid.uuid4()
    await publish(
        broker.bootstrap_servers,
        received("TEA", 6, days=90, lot_id=lot, location="A"),
        received("TEA", 4, days=90, lot_id=lot, location="B"),
    )
    await _until(inventory, f"/lots/{lot}", lambda body: body["on_hand"] == "10")
    unlocated = await inventory.post(
        "/adjustments", json={"lot_id": str(lot), "counted": "5", "reason": "count"}
    )
    assert unlocated.status_code == 422
    assert unlocated.json()["error"] == "location_required"
    counted = await inventory.post(
        "/adjustments",
        json={"lot_id": str(lot), "location": "A", "counted": "5", "reason": "cycle count"},
    )
    assert counted.status_code == 201, counted.text
    assert counted.json()["change"] == "-1"
    assert counted.json()["lot"]["on_hand"] == "9"
    negative = await inventory.post(
        "/adjustments",
        json={"lot_id": str(lot), "location": "B", "quantity": "-5", "reason": "breakage"},
    )
    assert negative.status_code == 409
    assert negative.json()["error"] == "negative_stock"
    assert (await inventory.get(f"/lots/{lot}")).json()["on_hand"] == "9"
    both = await inventory.post(
        "/adjustments", json={"lot_id": str(lot), "quantity": "1", "counted": "1", "reason": "x"}
    )
    assert both.status_code == 422


async def test_expiring_lists_lots_with_stock_that_expire_soon(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    soon, _later = await stocked(inventory, broker.bootstrap_servers, "EGG", 5, days=(5, 50))
    expiring = (await inventory.get("/lots/expiring", params={"within_days": 30})).json()
    assert [row["lot_id"] for row in expiring] == [str(soon)]


async def test_two_replicas_in_one_group_never_allocate_the_same_unit_twice(
    database_url: str, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    lots = {uuid.uuid4(): 40, uuid.uuid4(): 40, uuid.uuid4(): 40}
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(running(inventory_app(database_url, broker)))
            for _ in range(2)
        ]

        async def both_assigned() -> bool:
            counts = []
            for client in replicas:
                runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
                subscriber = runtime.broker.subscribers[0]
                counts.append(len(subscriber.consumer.assignment()) if subscriber.consumer else 0)
            # 3 partitions of each topic inventory consumes
            return all(counts) and sum(counts) == 3 * len(runtime.consumer.topics)

        await wait_until(both_assigned, timeout=60, what="both replicas own partitions")
        await publish(
            bootstrap,
            *(
                received("OJ", quantity, days=30 + n, lot_id=lot)
                for n, (lot, quantity) in enumerate(lots.items())
            ),
        )
        rng = random.Random(7)
        for lot in lots:
            await _until(replicas[0], f"/lots/{lot}", lambda body: body["on_hand"] != "0")
        # All at once, so both replicas allocate from the same lots at the same moment.
        orders = [order(f"SO-{n:03d}", "OJ", rng.randint(1, 3)) for n in range(300)]
        publishing = asyncio.create_task(publish(bootstrap, *orders))
        # Holds and releases through both replicas while orders are being allocated.
        hold_target = next(iter(lots))
        for round_ in range(4):
            client = replicas[round_ % 2]
            hold = await client.post(
                f"/lots/{hold_target}/hold", json={"reason": f"check {round_}"}
            )
            assert hold.status_code == 200, hold.text
            await asyncio.sleep(0.05)
            release = await client.post(f"/lots/{hold_target}/release", json={"reason": "ok"})
            assert release.status_code == 200, release.text
        await publishing

        async def all_applied() -> bool:
            ends = await end_offsets(bootstrap, "order-placed")
            committed = await committed_offsets(bootstrap, "inventory", "order-placed")
            return all(committed.get(tp, 0) >= end for tp, end in ends.items())

        await wait_until(all_applied, timeout=60, what="both replicas caught up")

    connection = await asyncpg.connect(database_url)
    try:
        stock = await connection.fetch(
            """
            SELECT s.lot_id, s.location, s.on_hand, s.reserved,
                   coalesce((SELECT sum(quantity) FROM reservations r
                             WHERE r.lot_id = s.lot_id AND r.location = s.location), 0) AS held
            FROM stock s
            """
        )
        lines = await connection.fetch("SELECT order_id, ordered, reserved FROM order_lines")
    finally:
        await connection.close()
    for row in stock:
        assert row["reserved"] == row["held"], row
        assert row["reserved"] <= row["on_hand"], row
    assert all(line["reserved"] <= line["ordered"] for line in lines)
    assert sum(row["reserved"] for row in stock) == sum(lots.values())  # demand exceeds stock

    latest = await latest_allocations(bootstrap, orders=len(orders))
    per_lot: dict[str, Decimal] = defaultdict(Decimal)
    for allocation in latest.values():
        for item in allocation["allocations"]:
            per_lot[item["lot_id"]] += Decimal(item["quantity"])
    for lot_id, quantity in lots.items():
        assert per_lot[str(lot_id)] <= quantity


async def test_concurrent_allocations_from_the_same_lots_never_reserve_a_unit_twice(
    database_url: str,
) -> None:
    """Eight transactions, each allocating other orders from the same two lots at the same
    moment, as replicas or HTTP commands do: the row locks serialise what they take."""
    await migrate(
        database_url, [("runtime", RUNTIME_MIGRATIONS), ("inventory", INVENTORY_MIGRATIONS)]
    )
    databases = [Database(database_url, source="/test", min_size=1, max_size=1) for _ in range(8)]
    for database in databases:
        await database.open()
    inventory = Inventory()
    try:
        for round_ in range(3):  # the race is timing-dependent: give it several chances
            sku = f"OJ-{round_}"
            lots = [uuid.uuid4(), uuid.uuid4()]
            async with databases[0].transaction() as unit:
                await inventory.on_goods_received(
                    unit,
                    [
                        incoming(received(sku, 25, days=30 + n, lot_id=lot))
                        for n, lot in enumerate(lots)
                    ],
                )
            start = asyncio.Event()

            async def allocate(
                worker: int, database: Database, sku: str = sku, start: asyncio.Event = start
            ) -> None:
                orders = [incoming(order(f"SO-{sku}-{worker}-{n}", sku, 2)) for n in range(10)]
                await start.wait()
                await database.run(lambda unit: inventory.on_order_placed(unit, orders))

            workers = [asyncio.create_task(allocate(n, db)) for n, db in enumerate(databases)]
            await asyncio.sleep(0.05)
            start.set()
            await asyncio.gather(*workers)

            rows = await databases[0].fetch(
                "SELECT s.lot_id, s.on_hand, s.reserved,"
                " (SELECT coalesce(sum(quantity), 0) FROM reservations r"
                "  WHERE r.lot_id = s.lot_id) AS held"
                " FROM stock s WHERE s.lot_id = ANY($1::uuid[])",
                lots,
            )
            for row in rows:
                assert row["reserved"] == row["held"] == row["on_hand"] == 25, dict(row)
            backordered = await databases[0].fetchval(
                "SELECT sum(ordered - shipped - reserved) FROM order_lines WHERE sku = $1", sku
            )
            assert backordered == 8 * 10 * 2 - 50
    finally:
        for database in databases:
            await database.close()


async def test_a_recall_and_a_receipt_of_a_lot_made_from_it_at_the_same_moment_meet(
    database_url: str,
) -> None:
    """Two replicas: one applies a recall of the apples, the other the receipt of juice made
    from them, each inside the other's transaction. Whichever commits first, the juice ends
    up recalled."""
    await migrate(
        database_url, [("runtime", RUNTIME_MIGRATIONS), ("inventory", INVENTORY_MIGRATIONS)]
    )
    first, second, observer = (
        Database(database_url, source="/test", min_size=1, max_size=1) for _ in range(3)
    )
    for database in (first, second, observer):
        await database.open()
    inventory = Inventory()

    async def blocked_on_a_lock() -> bool:
        waiting = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return bool(waiting)

    async def stock(unit: UnitOfWork, apples: uuid.UUID) -> None:
        await inventory.on_goods_received(
            unit, [incoming(received("APPLE", 100, days=30, lot_id=apples))]
        )

    async def recall(unit: UnitOfWork, apples: uuid.UUID) -> None:
        await inventory.on_recall_issued(unit, [incoming(recall_of(apples, f"RC-{apples}"))])

    async def receive(unit: UnitOfWork, apples: uuid.UUID, juice: uuid.UUID) -> None:
        await inventory.on_goods_received(
            unit, [incoming(made_from(apples, "JUICE", 10, lot_id=juice))]
        )

    try:
        for recall_first in (True, False):
            apples, juice = uuid.uuid4(), uuid.uuid4()
            await first.run(partial(stock, apples=apples))
            async with first.transaction() as unit:
                if recall_first:
                    await recall(unit, apples)
                    other = asyncio.create_task(
                        second.run(partial(receive, apples=apples, juice=juice))
                    )
                else:
                    await receive(unit, apples, juice)
                    other = asyncio.create_task(second.run(partial(recall, apples=apples)))
                await wait_until(blocked_on_a_lock, timeout=10, what="the other replica waits")
            await other
            status = await observer.fetchval("SELECT recalled FROM lots WHERE lot_id = $1", juice)
            assert status is True, f"juice not recalled (recall first: {recall_first})"
    finally:
        for database in (first, second, observer):
            await database.close()
