"""Inventory promises about stock coming back, against a real broker and PostgreSQL: the expiry
sweep, a cancelled order, a released hold and a count that goes up each give stock back, and
waiting orders take it oldest first, FEFO, each with a new `lot-allocated` revision."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from aiokafka import ConsumerRecord

from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import Settings, create_app
from services.inventory.handlers import Inventory
from shared.contracts.events import OrderCancelled
from tests.integration.events import applied, event_id
from tests.integration.service_apps import quick_settings, running
from tests.integration.test_inventory import order, received, shipped, stocked
from tests.kafka_helpers import publish, read_settled, read_topic

Revisions = dict[str, list[dict[str, Any]]]


class Clock:
    """Inventory's idea of today, moved by the test."""

    def __init__(self) -> None:
        self.today = datetime.now(UTC).date()

    def __call__(self) -> date:
        return self.today


def running_inventory(database_url: str, broker: TansuBroker, *, clock: Clock | None = None) -> Any:
    settings = quick_settings(Settings, database_url, broker, expiry_sweep_seconds=0.2)
    return running(create_app(settings, inventory=Inventory(today=clock or Clock())))


@pytest_asyncio.fixture
async def inventory(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    """Inventory for the tests that leave its clock at today."""
    async with running_inventory(database_url, broker) as client:
        yield client


async def revisions(bootstrap: str) -> Revisions:
    """The `lot-allocated` records on the topic now, per order, in revision order."""
    return by_order(await read_topic(bootstrap, "lot-allocated", at_least=0, timeout=10))


def by_order(records: list[ConsumerRecord[Any, Any]]) -> Revisions:
    per_order: Revisions = defaultdict(list)
    for record in records:
        data = json.loads(record.value)["data"]
        per_order[data["order_id"]].append(data)
    for allocations in per_order.values():
        allocations.sort(key=lambda data: int(data["revision"]))
    return per_order


async def until_revision(bootstrap: str, order_id: str, revision: int) -> Revisions:
    found: Revisions = {}

    async def reached() -> bool:
        found.clear()
        found.update(await revisions(bootstrap))
        return any(data["revision"] >= revision for data in found.get(order_id, []))

    await wait_until(reached, timeout=30, what=f"{order_id} revision {revision}")
    return found


async def latest_settled(bootstrap: str, database_url: str) -> dict[str, dict[str, Any]]:
    """Each order's newest allocation once inventory's outbox is published: after an HTTP
    command has answered, everything it emitted is there."""
    every = by_order(await read_settled(bootstrap, "lot-allocated", database_url))
    return {order_id: data[-1] for order_id, data in every.items()}


def taken(allocation: dict[str, Any]) -> dict[str, str]:
    """Quantity per lot in one allocation."""
    return {a["lot_id"]: a["quantity"] for a in allocation["allocations"]}


def backordered(allocation: dict[str, Any]) -> list[str]:
    return [b["quantity"] for b in allocation["backordered"]]


async def lot_where(client: httpx.AsyncClient, lot_id: uuid.UUID, **expected: str) -> None:
    async def matches() -> bool:
        response = await client.get(f"/lots/{lot_id}")
        body = response.json() if response.status_code == 200 else {}
        return all(body.get(key) == value for key, value in expected.items())

    await wait_until(matches, timeout=30, what=f"lot {lot_id} with {expected}")


async def test_the_expiry_sweep_frees_reservations_and_the_oldest_order_takes_the_next_fefo_lot(
    database_url: str, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    clock = Clock()
    short, following, last = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with running_inventory(database_url, broker, clock=clock) as client:
        await publish(
            bootstrap,
            received("YOG", 6, days=3, lot_id=short),
            received("YOG", 4, days=20, lot_id=following),
            received("YOG", 10, days=60, lot_id=last),
        )
        await lot_where(client, last, on_hand="10")
        # The older order has the later id: "oldest first" cannot be an alphabetical accident.
        await publish(bootstrap, order("SO-Z", "YOG", 3))
        await until_revision(bootstrap, "SO-Z", 1)
        await publish(bootstrap, order("SO-A", "YOG", 3))
        first = await until_revision(bootstrap, "SO-A", 1)
        assert taken(first["SO-Z"][0]) == taken(first["SO-A"][0]) == {str(short): "3"}

        clock.today += timedelta(days=7)  # the short-dated lot has expired
        await until_revision(bootstrap, "SO-Z", 2)
        after = await until_revision(bootstrap, "SO-A", 2)
        expired = (await client.get(f"/lots/{short}")).json()
        history = (await client.get(f"/lots/{short}/history")).json()

    older, newer = after["SO-Z"][-1], after["SO-A"][-1]
    assert (older["revision"], newer["revision"]) == (2, 2)
    assert taken(older) == {str(following): "3"}
    assert taken(newer) == {str(following): "1", str(last): "2"}
    assert backordered(older) == backordered(newer) == []
    assert (expired["status"], expired["reserved"]) == ("expired", "0")
    released = [h for h in history if h["change"] == "released"]
    assert sorted((h["order_id"], h["cause"]) for h in released) == [
        ("SO-A", "rule:expiry"),
        ("SO-Z", "rule:expiry"),
    ]


async def test_a_cancelled_order_gives_back_what_it_had_not_shipped_to_the_waiting_order(
    inventory: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    [kiwi] = await stocked(inventory, bootstrap, "KIWI", 6, days=(30,))
    await publish(bootstrap, order("SO-C", "KIWI", 4))
    await until_revision(bootstrap, "SO-C", 1)
    await publish(bootstrap, order("SO-W", "KIWI", 3))
    waiting = (await until_revision(bootstrap, "SO-W", 1))["SO-W"][0]
    assert (taken(waiting), backordered(waiting)) == ({str(kiwi): "2"}, ["1"])
    await publish(bootstrap, shipped("SO-C", "KIWI", kiwi, 1))
    await lot_where(inventory, kiwi, on_hand="5", reserved="5")

    [cancel] = await publish(bootstrap, OrderCancelled(order_id="SO-C", reason="no longer"))
    await until_revision(bootstrap, "SO-W", 2)
    await wait_until(
        lambda: applied(database_url, [event_id(cancel)]), timeout=30, what="cancel applied"
    )
    every = by_order(await read_settled(bootstrap, "lot-allocated", database_url))
    cancelled = (await inventory.get("/orders/SO-C")).json()
    stock = (await inventory.get(f"/lots/{kiwi}")).json()

    # Nothing more for the cancelled order: its revision 1 is all fulfillment ever got.
    assert [data["revision"] for data in every["SO-C"]] == [1]
    assert [data["revision"] for data in every["SO-W"]] == [1, 2]
    assert (taken(every["SO-W"][1]), backordered(every["SO-W"][1])) == ({str(kiwi): "3"}, [])
    assert cancelled["status"] == "cancelled"
    assert cancelled["reservations"] == []
    assert [(line["shipped"], line["reserved"]) for line in cancelled["lines"]] == [("1", "0")]
    # 6 received, 1 shipped, 3 reserved by the waiting order: the other 2 are free again.
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == ("5", "3", "2")


async def test_a_released_hold_and_a_count_that_goes_up_fill_backorders_oldest_first(
    inventory: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    [honey] = await stocked(inventory, bootstrap, "HONEY", 4, days=(90,))
    held = await inventory.post(f"/lots/{honey}/hold", json={"reason": "crystals seen"})
    assert held.status_code == 200, held.text
    for order_id in ("SO-Z", "SO-M", "SO-A"):  # placed in this order, oldest first
        await publish(bootstrap, order(order_id, "HONEY", 3))
        placed = (await until_revision(bootstrap, order_id, 1))[order_id][0]
        assert (taken(placed), backordered(placed)) == ({}, ["3"])

    released = await inventory.post(f"/lots/{honey}/release", json={"reason": "lab clear"})
    assert released.status_code == 200, released.text
    after_release = await latest_settled(bootstrap, database_url)

    counted = await inventory.post(
        "/adjustments",
        json={"lot_id": str(honey), "location": "MAIN", "quantity": "2", "reason": "found"},
    )
    assert counted.status_code == 201, counted.text
    after_count = await latest_settled(bootstrap, database_url)

    assert (taken(after_release["SO-Z"]), backordered(after_release["SO-Z"])) == (
        {str(honey): "3"},
        [],
    )
    assert (taken(after_release["SO-M"]), backordered(after_release["SO-M"])) == (
        {str(honey): "1"},
        ["2"],
    )
    assert (taken(after_release["SO-A"]), backordered(after_release["SO-A"])) == ({}, ["3"])
    assert (taken(after_count["SO-M"]), backordered(after_count["SO-M"])) == (
        {str(honey): "3"},
        [],
    )
    assert (taken(after_count["SO-A"]), backordered(after_count["SO-A"])) == ({}, ["3"])
    assert after_count["SO-Z"] == after_release["SO-Z"]  # a filled order is left alone
