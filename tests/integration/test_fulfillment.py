"""Fulfillment against a real broker and PostgreSQL: shipping what inventory allocated, lot
by lot, in whatever order the events arrive; never a recalled lot; never more than ordered."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from bench.measure import wait_caught_up
from lottrace.infra import TansuBroker, wait_until
from services.fulfillment.app import Settings, create_app
from services.inventory import app as inventory_service
from shared.contracts.events import (
    GoodsReceived,
    LotAllocated,
    OrderCancelled,
    OrderPlaced,
    RecallIssued,
)
from tests.conftest import PostgresServer
from tests.integration.service_apps import assert_error, quick_settings, running, until_served
from tests.kafka_helpers import publish, read_settled, read_topic

LOT_A, LOT_B = uuid.uuid4(), uuid.uuid4()


def fulfillment_app(database_url: str, broker: TansuBroker, *, auto_ship: bool) -> Any:
    return create_app(quick_settings(Settings, database_url, broker, auto_ship=auto_ship))


@pytest_asyncio.fixture
async def auto(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with running(fulfillment_app(database_url, broker, auto_ship=True)) as client:
        yield client


@pytest_asyncio.fixture
async def manual(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with running(fulfillment_app(database_url, broker, auto_ship=False)) as client:
        yield client


def placed(order_id: str, *quantities: int) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer={"customer_id": "C-7", "name": "Deli Seven"},
        lines=[{"line_no": n + 1, "sku": "OJ", "quantity": q} for n, q in enumerate(quantities)],
    )


def allocated(
    order_id: str,
    revision: int,
    *allocations: tuple[int, uuid.UUID, int],
    backordered: Sequence[tuple[int, int]] = (),
) -> LotAllocated:
    """`backordered`: (line, quantity) that inventory could not allocate."""
    return LotAllocated(
        order_id=order_id,
        customer_id="C-7",
        revision=revision,
        allocations=[
            {
                "line_no": line,
                "sku": "OJ",
                "lot_id": lot,
                "lot_code": lot_code(lot),
                "quantity": qty,
            }
            for line, lot, qty in allocations
        ],
        backordered=[
            {"line_no": line, "sku": "OJ", "quantity": qty, "reason": "insufficient_stock"}
            for line, qty in backordered
        ],
    )


async def order(client: httpx.AsyncClient, order_id: str, accept: Any) -> dict[str, Any]:
    return await until_served(
        client, f"/orders/{order_id}", accept, what=f"order {order_id} as expected"
    )


async def allocated_order(
    client: httpx.AsyncClient,
    broker: TansuBroker,
    placed_order: OrderPlaced,
    allocation: LotAllocated,
) -> dict[str, Any]:
    """The order as fulfillment serves it once it has both the order and this allocation."""
    await publish(broker.bootstrap_servers, placed_order)
    await publish(broker.bootstrap_servers, allocation)
    revision = allocation.revision
    return await order(client, allocation.order_id, lambda o: o["allocation_revision"] == revision)


async def shipped_events(broker: TansuBroker, database_url: str) -> list[dict[str, Any]]:
    """Every order-shipped event, once fulfillment's outbox has nothing left to publish."""
    records = await read_settled(broker.bootstrap_servers, "order-shipped", database_url)
    return [json.loads(record.value)["data"] for record in records]


def lot_code(lot: uuid.UUID) -> str:
    return f"L-{str(lot)[:4]}"


async def test_with_auto_ship_an_allocated_order_ships_at_once(
    auto: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    await publish(broker.bootstrap_servers, placed("SO-1", 5, 2))
    await order(auto, "SO-1", lambda o: o["status"] == "open")
    await publish(
        broker.bootstrap_servers, allocated("SO-1", 1, (1, LOT_A, 3), (1, LOT_B, 2), (2, LOT_B, 2))
    )
    done = await order(auto, "SO-1", lambda o: o["status"] == "shipped")
    assert [(line["ordered"], line["shipped"]) for line in done["lines"]] == [
        ("5", "5"),
        ("2", "2"),
    ]
    assert done["allocations"] == []
    [shipment] = await shipped_events(broker, database_url)
    assert shipment["customer"]["name"] == "Deli Seven"
    assert sorted(
        (line["line_no"], line["lot_id"], line["quantity"]) for line in shipment["lines"]
    ) == sorted([(1, str(LOT_A), "3"), (1, str(LOT_B), "2"), (2, str(LOT_B), "2")])


async def test_an_allocation_that_arrives_before_its_order_ships_when_the_order_arrives(
    auto: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await publish(broker.bootstrap_servers, allocated("SO-2", 1, (1, LOT_A, 4)))
    waiting = await order(auto, "SO-2", lambda o: o["allocation_revision"] == 1)
    assert waiting["status"] == "awaiting_order"
    assert waiting["shipments"] == []
    await publish(broker.bootstrap_servers, placed("SO-2", 4))
    done = await order(auto, "SO-2", lambda o: o["status"] == "shipped")
    assert done["customer"]["customer_id"] == "C-7"
    assert len(done["shipments"]) == 1


async def test_a_stale_allocation_does_not_replace_a_newer_one(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await allocated_order(manual, broker, placed("SO-3", 6), allocated("SO-3", 2, (1, LOT_B, 6)))
    await publish(broker.bootstrap_servers, allocated("SO-3", 1, (1, LOT_A, 6)))
    # Offsets are committed after the database commit: caught up means the stale one applied.
    await wait_caught_up(broker.bootstrap_servers, "fulfillment", ["lot-allocated"], timeout=30)
    current = await order(manual, "SO-3", lambda o: True)
    assert [(a["lot_id"], a["quantity"]) for a in current["allocations"]] == [(str(LOT_B), "6")]


async def test_a_recalled_lot_never_ships_and_its_lines_wait_for_reallocation(
    auto: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    recall = RecallIssued(
        recall_id="RC-1",
        issued_at=datetime.now(UTC),
        reason="foreign body",
        scope={"lot_ids": [LOT_A]},
        affected_lots=[{"lot_id": LOT_A, "lot_code": "L-A", "sku": "OJ"}],
        affected_customer_count=0,
        shipped_quantity="0",
    )
    await publish(broker.bootstrap_servers, recall)
    await publish(broker.bootstrap_servers, placed("SO-4", 3, 2))
    await order(auto, "SO-4", lambda o: o["status"] == "open")
    await publish(broker.bootstrap_servers, allocated("SO-4", 1, (1, LOT_A, 3), (2, LOT_B, 2)))
    partly = await order(auto, "SO-4", lambda o: o["allocation_revision"] == 1 and o["shipments"])
    assert [(line["line_no"], line["shipped"]) for line in partly["lines"]] == [(1, "0"), (2, "2")]
    assert [(a["lot_id"], a["blocked"]) for a in partly["allocations"]] == [
        (str(LOT_A), "recalled")
    ]
    refused = await auto.post("/shipments", json={"order_id": "SO-4"})
    detail = assert_error(refused, 409, "lot_blocked")["detail"]
    assert detail.startswith(f"lot {lot_code(LOT_A)} is recalled")
    [shipment] = await shipped_events(broker, database_url)
    assert {line["lot_id"] for line in shipment["lines"]} == {str(LOT_B)}


# Undated lots ship in lot id order: FIRST is the lot a line ships from first.
FIRST, SECOND = uuid.UUID(int=1), uuid.UUID(int=2**128 - 1)


async def shipped_three_of_four(
    client: httpx.AsyncClient, broker: TansuBroker, order_id: str
) -> None:
    """Order `order_id` of 4, of which inventory allocated 3 of lot FIRST and backordered 1;
    once fulfillment shipped those 3 (inventory has not heard of it yet)."""
    await allocated_order(
        client,
        broker,
        placed(order_id, 4),
        allocated(order_id, 1, (1, FIRST, 3), backordered=[(1, 1)]),
    )
    await order(client, order_id, lambda o: o["lines"][0]["shipped"] == "3")


async def test_a_reallocation_that_crossed_a_shipment_ships_only_the_new_lot(
    auto: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    await shipped_three_of_four(auto, broker, "SO-10")
    # Stock came in: inventory allocates the backordered unit from lot SECOND, before it has
    # heard of the shipment, so its allocation still holds the 3 of FIRST that left.
    await publish(broker.bootstrap_servers, allocated("SO-10", 2, (1, FIRST, 3), (1, SECOND, 1)))
    done = await order(auto, "SO-10", lambda o: o["status"] == "shipped")
    assert [(line["ordered"], line["shipped"]) for line in done["lines"]] == [("4", "4")]
    first, second = await shipped_events(broker, database_url)
    assert [(line["lot_id"], line["quantity"]) for line in first["lines"]] == [(str(FIRST), "3")]
    # Not a fourth unit of FIRST: inventory held only 3 of it for this order.
    assert [(line["lot_id"], line["quantity"]) for line in second["lines"]] == [(str(SECOND), "1")]


async def test_units_inventory_gave_back_after_they_shipped_do_not_ship_again(
    auto: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    await shipped_three_of_four(auto, broker, "SO-11")
    # A shipment made elsewhere took a unit of FIRST: inventory, before it has heard of ours,
    # gives one of this order's 3 back and backorders it.
    await publish(
        broker.bootstrap_servers, allocated("SO-11", 2, (1, FIRST, 2), backordered=[(1, 2)])
    )
    current = await order(auto, "SO-11", lambda o: o["allocation_revision"] == 2)
    assert current["status"] == "open"
    assert [(line["ordered"], line["shipped"]) for line in current["lines"]] == [("4", "3")]
    assert current["allocations"] == []  # the 2 of FIRST are among the 3 that left
    [shipment] = await shipped_events(broker, database_url)
    assert [(line["lot_id"], line["quantity"]) for line in shipment["lines"]] == [(str(FIRST), "3")]


async def test_shipping_by_hand_checks_scans_ships_part_and_is_safe_to_retry(
    manual: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    allocation = allocated("SO-5", 1, (1, LOT_A, 4), (2, LOT_B, 3))
    current = await allocated_order(manual, broker, placed("SO-5", 4, 3), allocation)
    assert len(current["allocations"]) == 2

    wrong = await scanned(manual, "SO-5", "(01)09501101530003(10)NOT-OURS")
    assert "NOT-OURS" in assert_error(wrong, 409, "lot_not_allocated")["detail"]

    part = {"order_id": "SO-5", "shipment_id": "SH-5-1", "lines": [{"line_no": 1, "quantity": "1"}]}
    first = await manual.post("/shipments", json=part)
    assert first.status_code == 201, first.text
    assert [(line["line_no"], line["quantity"]) for line in first.json()["lines"]] == [(1, "1")]
    again = await manual.post("/shipments", json=part)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["shipment_id"] == "SH-5-1"

    too_much = await manual.post(
        "/shipments", json={"order_id": "SO-5", "lines": [{"line_no": 1, "quantity": "4"}]}
    )
    assert_error(too_much, 409, "over_shipment")

    by_scan = await scanned(manual, "SO-5", f"(01)09501101530003(10){lot_code(LOT_A)}")
    assert by_scan.status_code == 201, by_scan.text
    assert {line["lot_id"] for line in by_scan.json()["lines"]} == {str(LOT_A)}  # only it
    rest = await manual.post("/shipments", json={"order_id": "SO-5"})
    assert rest.status_code == 201
    done = await order(manual, "SO-5", lambda o: o["status"] == "shipped")
    assert [(line["ordered"], line["shipped"]) for line in done["lines"]] == [
        ("4", "4"),
        ("3", "3"),
    ]
    nothing = await manual.post("/shipments", json={"order_id": "SO-5"})
    assert_error(nothing, 409, "order_shipped")
    assert len(await shipped_events(broker, database_url)) == 3


async def test_a_cancelled_order_is_not_shipped(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await allocated_order(manual, broker, placed("SO-6", 2), allocated("SO-6", 1, (1, LOT_B, 2)))
    await publish(
        broker.bootstrap_servers, OrderCancelled(order_id="SO-6", reason="customer changed mind")
    )
    await order(manual, "SO-6", lambda o: o["status"] == "cancelled")
    refused = await manual.post("/shipments", json={"order_id": "SO-6"})
    assert_error(refused, 409, "order_cancelled")


# ------------------------------------------------------------------ scans: lot code and GTIN

OJ_GTIN, AJ_GTIN, OTHER_GTIN = "09501101530003", "09501101530010", "04012345000009"
TWIN_GTINS = {("OJ-1L", OJ_GTIN), ("AJ-1L", AJ_GTIN)}  # (SKU, GTIN) of the twin-coded lots


def case(gtin: str, lot_code: str) -> str:
    """A case label as a scanner reads it (human-readable GS1 form)."""
    return f"(01){gtin}(10){lot_code}"


def twin_order(order_id: str, orange_juice: int, apple_juice: int) -> OrderPlaced:
    """Order SO-n of customer C-n for both twin products: line 1 orange, line 2 apple juice."""
    return OrderPlaced(
        order_id=order_id,
        customer={"customer_id": order_id.replace("SO-", "C-")},
        lines=[
            {"line_no": 1, "sku": "OJ-1L", "quantity": orange_juice},
            {"line_no": 2, "sku": "AJ-1L", "quantity": apple_juice},
        ],
    )


async def scanned(client: httpx.AsyncClient, order_id: str, *labels: str) -> httpx.Response:
    """Ask to ship `order_id` from the cases with these labels, as scanned."""
    return await client.post("/shipments", json={"order_id": order_id, "scans": list(labels)})


async def test_a_scanned_case_must_be_the_allocated_product_not_only_the_lot_code(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    # Two products of one order whose lots happen to share the lot code TWIN-1.
    oj_lot, aj_lot = uuid.uuid4(), uuid.uuid4()
    await publish(
        broker.bootstrap_servers,
        twin_order("SO-7", orange_juice=4, apple_juice=6),
        LotAllocated(
            order_id="SO-7",
            customer_id="C-7",
            revision=1,
            allocations=[
                {"line_no": 1, "sku": "OJ-1L", "lot_id": oj_lot, "lot_code": "TWIN-1",
                 "quantity": 4, "gtin": OJ_GTIN},
                {"line_no": 2, "sku": "AJ-1L", "lot_id": aj_lot, "lot_code": "TWIN-1",
                 "quantity": 6, "gtin": AJ_GTIN},
            ],
        ),
    )  # fmt: skip
    current = await order(manual, "SO-7", lambda o: len(o["allocations"]) == 2)
    assert {(a["sku"], a["gtin"]) for a in current["allocations"]} == TWIN_GTINS

    wrong = await scanned(manual, "SO-7", case(OTHER_GTIN, "TWIN-1"))
    detail = assert_error(wrong, 409, "wrong_product")["detail"]
    assert OTHER_GTIN in detail
    assert "TWIN-1" in detail
    assert OJ_GTIN in detail  # what the order expects
    assert AJ_GTIN in detail
    unchanged = await order(manual, "SO-7", lambda o: True)
    assert unchanged["shipments"] == []
    assert len(unchanged["allocations"]) == 2

    right = await scanned(manual, "SO-7", case(OJ_GTIN, "TWIN-1"))
    assert right.status_code == 201, right.text
    # only the scanned product's lot, not the other product's lot with the same code
    assert [
        (line["line_no"], line["lot_id"], line["quantity"]) for line in right.json()["lines"]
    ] == [(1, str(oj_lot), "4")]
    left = await order(manual, "SO-7", lambda o: len(o["allocations"]) == 1)
    assert [(a["lot_id"], a["gtin"]) for a in left["allocations"]] == [(str(aj_lot), AJ_GTIN)]


async def test_inventory_allocations_carry_the_lots_gtin_to_scan_verification(
    manual: httpx.AsyncClient, broker: TansuBroker, postgres_server: PostgresServer
) -> None:
    """End to end from goods-received: inventory allocates two products' lots that share a lot
    code, its lot-allocated names each lot's GTIN, and fulfillment tells the cases apart."""
    now = datetime.now(UTC)
    oj_lot, aj_lot = uuid.uuid4(), uuid.uuid4()
    receipts = [
        GoodsReceived(
            receipt_id=f"R-{sku}", lot_id=lot, lot_code="TWIN-2", sku=sku, gtin=gtin,
            quantity=10, received_at=now,
        )
        for sku, gtin, lot in [("OJ-1L", OJ_GTIN, oj_lot), ("AJ-1L", AJ_GTIN, aj_lot)]
    ]  # fmt: skip
    inventory_database = await postgres_server.create_database()
    try:
        inventory_settings = quick_settings(
            inventory_service.Settings, postgres_server.url(inventory_database), broker
        )
        inventory_app = inventory_service.create_app(inventory_settings)
        async with running(inventory_app) as inventory:
            await publish(broker.bootstrap_servers, *receipts)

            async def stocked() -> bool:
                for sku in ("OJ-1L", "AJ-1L"):
                    stock = await inventory.get("/stock", params={"sku": sku})
                    if stock.status_code != 200 or not stock.json():
                        return False
                return True

            await wait_until(stocked, timeout=30, what="both lots in stock")
            await publish(
                broker.bootstrap_servers, twin_order("SO-8", orange_juice=3, apple_juice=5)
            )
            current = await order(manual, "SO-8", lambda o: len(o["allocations"]) == 2)
    finally:
        await postgres_server.drop_database(inventory_database)

    [event] = [
        json.loads(record.value)["data"]
        for record in await read_topic(broker.bootstrap_servers, "lot-allocated")
    ]
    assert {(a["sku"], a["lot_id"], a["gtin"]) for a in event["allocations"]} == {
        ("OJ-1L", str(oj_lot), OJ_GTIN),
        ("AJ-1L", str(aj_lot), AJ_GTIN),
    }
    assert {(a["sku"], a["gtin"]) for a in current["allocations"]} == TWIN_GTINS

    wrong = await scanned(manual, "SO-8", case(OTHER_GTIN, "TWIN-2"))
    assert_error(wrong, 409, "wrong_product")

    right = await scanned(manual, "SO-8", case(AJ_GTIN, "TWIN-2"))
    assert right.status_code == 201, right.text
    assert [(line["sku"], line["lot_id"], line["quantity"]) for line in right.json()["lines"]] == [
        ("AJ-1L", str(aj_lot), "5")
    ]
