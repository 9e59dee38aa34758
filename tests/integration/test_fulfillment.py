"""Fulfillment against a real broker and PostgreSQL: shipping what inventory allocated, lot
by lot, in whatever order the events arrive; never a recalled lot; never more than ordered."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.fulfillment.app import Settings, create_app
from shared.contracts.events import LotAllocated, OrderCancelled, OrderPlaced, RecallIssued
from shared.runtime.settings import KafkaSettings
from tests.integration.service_apps import ADMIN_API_KEYS, kafka_env, running
from tests.kafka_helpers import publish, read_topic

LOT_A, LOT_B = uuid.uuid4(), uuid.uuid4()


def fulfillment_app(database_url: str, broker: TansuBroker, *, auto_ship: bool) -> Any:
    return create_app(
        Settings(
            database_url=database_url,
            kafka=KafkaSettings(**kafka_env(broker)),
            consumer_batch_timeout_ms=20,
            auto_ship=auto_ship,
            api_keys=ADMIN_API_KEYS,
        )
    )


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
    order_id: str, revision: int, *allocations: tuple[int, uuid.UUID, int]
) -> LotAllocated:
    return LotAllocated(
        order_id=order_id,
        customer_id="C-7",
        revision=revision,
        allocations=[
            {
                "line_no": line,
                "sku": "OJ",
                "lot_id": lot,
                "lot_code": f"L-{str(lot)[:4]}",
                "quantity": qty,
            }
            for line, lot, qty in allocations
        ],
    )


async def order(client: httpx.AsyncClient, order_id: str, accept: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        response = await client.get(f"/orders/{order_id}")
        if response.status_code != 200:
            return False
        found.clear()
        found.update(response.json())
        return bool(accept(found))

    await wait_until(check, timeout=30, what=f"order {order_id} as expected")
    return found


async def shipped_events(broker: TansuBroker, *, at_least: int = 1) -> list[dict[str, Any]]:
    records = await read_topic(
        broker.bootstrap_servers, "order-shipped", at_least=at_least, settle=0.5
    )
    return [json.loads(record.value)["data"] for record in records]


async def test_with_auto_ship_an_allocated_order_ships_at_once(
    auto: httpx.AsyncClient, broker: TansuBroker
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
    [shipment] = await shipped_events(broker)
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
    await publish(broker.bootstrap_servers, placed("SO-3", 6))
    await publish(broker.bootstrap_servers, allocated("SO-3", 2, (1, LOT_B, 6)))
    await order(manual, "SO-3", lambda o: o["allocation_revision"] == 2)
    await publish(broker.bootstrap_servers, allocated("SO-3", 1, (1, LOT_A, 6)))
    await publish(broker.bootstrap_servers, placed("SO-3-marker", 1))
    await order(manual, "SO-3-marker", lambda o: True)  # the stale event was consumed by now
    current = await order(manual, "SO-3", lambda o: True)
    assert [(a["lot_id"], a["quantity"]) for a in current["allocations"]] == [(str(LOT_B), "6")]


async def test_a_recalled_lot_never_ships_and_its_lines_wait_for_reallocation(
    auto: httpx.AsyncClient, broker: TansuBroker
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
    assert refused.status_code == 409
    assert refused.json()["error"] == "lot_blocked"
    assert "L-" in refused.json()["detail"]
    [shipment] = await shipped_events(broker)
    assert {line["lot_id"] for line in shipment["lines"]} == {str(LOT_B)}


async def test_shipping_by_hand_checks_scans_ships_part_and_is_safe_to_retry(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await publish(broker.bootstrap_servers, placed("SO-5", 4, 3))
    lot_code = f"L-{str(LOT_A)[:4]}"
    await publish(broker.bootstrap_servers, allocated("SO-5", 1, (1, LOT_A, 4), (2, LOT_B, 3)))
    await order(manual, "SO-5", lambda o: len(o["allocations"]) == 2)

    wrong = await manual.post(
        "/shipments", json={"order_id": "SO-5", "scans": ["(01)09501101530003(10)NOT-OURS"]}
    )
    assert wrong.status_code == 409
    assert wrong.json()["error"] == "lot_not_allocated"
    assert "NOT-OURS" in wrong.json()["detail"]

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
    assert too_much.status_code == 409
    assert too_much.json()["error"] == "over_shipment"

    scanned = await manual.post(
        "/shipments", json={"order_id": "SO-5", "scans": [f"(01)09501101530003(10){lot_code}"]}
    )
    assert scanned.status_code == 201, scanned.text
    assert {line["lot_id"] for line in scanned.json()["lines"]} == {
        str(LOT_A)
    }  # only the scanned lot
    rest = await manual.post("/shipments", json={"order_id": "SO-5"})
    assert rest.status_code == 201
    done = await order(manual, "SO-5", lambda o: o["status"] == "shipped")
    assert [(line["ordered"], line["shipped"]) for line in done["lines"]] == [
        ("4", "4"),
        ("3", "3"),
    ]
    nothing = await manual.post("/shipments", json={"order_id": "SO-5"})
    assert nothing.status_code == 409
    assert nothing.json()["error"] == "order_shipped"
    assert len(await shipped_events(broker, at_least=3)) == 3


async def test_a_cancelled_order_is_not_shipped(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await publish(broker.bootstrap_servers, placed("SO-6", 2))
    await publish(broker.bootstrap_servers, allocated("SO-6", 1, (1, LOT_B, 2)))
    await order(manual, "SO-6", lambda o: o["allocation_revision"] == 1)
    await publish(
        broker.bootstrap_servers, OrderCancelled(order_id="SO-6", reason="customer changed mind")
    )
    await order(manual, "SO-6", lambda o: o["status"] == "cancelled")
    refused = await manual.post("/shipments", json={"order_id": "SO-6"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "order_cancelled"
