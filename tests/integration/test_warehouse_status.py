"""Lot status on the warehouse floor, against a real broker and PostgreSQL: inventory
announces every status change on `lot-status-changed` (receipt, hold, release, depletion),
never moves stock for an imported shipment, and fulfillment refuses to ship a lot announced
as not available, before any re-allocation reaches it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.measure import wait_caught_up
from lottrace.infra import TansuBroker, wait_until
from shared.contracts.events import LotStatusChanged
from tests.integration.events import shipment_of
from tests.integration.service_apps import assert_error
from tests.integration.service_apps import until_served as _until
from tests.integration.test_fulfillment import (
    allocated,
    allocated_order,
    auto,
    lot_code,
    manual,
    placed,
)
from tests.integration.test_inventory import inventory, order, received
from tests.integration.test_inventory_promises import Clock, running_inventory
from tests.kafka_helpers import publish, read_settled, read_topic

__all__ = ["auto", "inventory", "manual"]  # fixtures


async def statuses_of(bootstrap: str, lot_id: uuid.UUID, count: int) -> list[dict[str, Any]]:
    """The first `count` status changes announced for one lot, in order."""
    found: list[dict[str, Any]] = []

    async def announced() -> bool:
        records = await read_topic(bootstrap, "lot-status-changed", at_least=0, timeout=10)
        data = [json.loads(record.value)["data"] for record in records]
        found[:] = [d for d in data if d["lot_id"] == str(lot_id)]
        return len(found) >= count

    await wait_until(announced, timeout=30, what=f"{count} status changes of lot {lot_id}")
    return found[:count]


async def test_inventory_announces_each_status_change_and_ignores_imported_shipments(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    tea = uuid.uuid4()
    receipt = received("TEA", 6, days=30, lot_id=tea)
    await publish(bootstrap, receipt)
    await _until(inventory, f"/lots/{tea}", lambda body: body["on_hand"] == "6")
    held = await inventory.post(f"/lots/{tea}/hold", json={"reason": "leaking case"})
    assert held.json()["status"] == "quarantined"
    await inventory.post(f"/lots/{tea}/release", json={"reason": "case replaced"})

    # A shipment loaded at onboarding counts for traces only: the stock stays.
    old = shipment_of({"customer_id": "C-OLD"}, receipt, quantity=4, number="OLD")
    await publish(bootstrap, old.model_copy(update={"imported": True}))
    await publish(bootstrap, order("SO-T", "TEA", 6))
    await _until(inventory, f"/lots/{tea}", lambda body: body["reserved"] == "6")
    await publish(
        bootstrap, shipment_of({"customer_id": "C-SO-T"}, receipt, quantity=6, number="T")
    )
    gone = await _until(inventory, f"/lots/{tea}", lambda body: body["on_hand"] == "0")
    assert (gone["shipped"], gone["status"]) == ("6", "depleted")

    changes = await statuses_of(bootstrap, tea, 3)
    assert [(c["previous_status"], c["status"], c.get("actor")) for c in changes] == [
        ("available", "quarantined", "qa-anna"),
        ("quarantined", "available", "qa-anna"),
        ("available", "depleted", None),
    ]
    assert changes[0]["reason"] == "quality hold: leaking case"
    assert changes[2]["reason"] == "shipped"


async def test_fulfillment_refuses_a_lot_announced_as_not_available_without_a_reallocation(
    manual: httpx.AsyncClient, broker: TansuBroker
) -> None:
    lot = uuid.uuid4()
    await allocated_order(manual, broker, placed("SO-Q", 4), allocated("SO-Q", 1, (1, lot, 4)))
    held_at = datetime.now(UTC)

    def status(name: str, at: datetime) -> LotStatusChanged:
        return LotStatusChanged(
            lot_id=lot,
            lot_code=lot_code(lot),
            sku="OJ",
            status=name,
            previous_status="available",
            reason="test",
            changed_at=at,
        )

    await publish(broker.bootstrap_servers, status("quarantined", held_at))
    await _until(manual, "/orders/SO-Q", lambda o: o["allocations"][0]["blocked"] == "quarantined")
    refused = await manual.post("/shipments", json={"order_id": "SO-Q"})
    detail = assert_error(refused, 409, "lot_blocked")["detail"]
    assert detail.startswith(f"lot {lot_code(lot)} is quarantined")

    # A newer announcement clears the lot; an older one arriving late changes nothing.
    await publish(
        broker.bootstrap_servers,
        status("available", held_at + timedelta(seconds=5)),
        status("quarantined", held_at + timedelta(seconds=1)),
    )
    await wait_caught_up(
        broker.bootstrap_servers, "fulfillment", ["lot-status-changed"], timeout=30
    )
    current = (await manual.get("/orders/SO-Q")).json()
    assert current["allocations"][0]["blocked"] is None
    shipment = await manual.post("/shipments", json={"order_id": "SO-Q"})
    assert shipment.status_code == 201, shipment.text


async def test_the_expiry_sweep_announces_a_lot_that_expired_with_stock_and_not_an_empty_one(
    database_url: str, broker: TansuBroker
) -> None:
    bootstrap, clock = broker.bootstrap_servers, Clock()
    full, empty = uuid.uuid4(), uuid.uuid4()
    async with running_inventory(database_url, broker, clock=clock) as client:
        await publish(
            bootstrap,
            received("YOG", 5, days=2, lot_id=full),
            received("YOG", 5, days=2, lot_id=empty),
        )
        await _until(client, f"/lots/{empty}", lambda body: body["on_hand"] == "5")
        counted = {"lot_id": str(empty), "counted": "0", "reason": "spoiled"}
        assert (await client.post("/adjustments", json=counted)).status_code == 201
        clock.today += timedelta(days=3)
        [expired] = await statuses_of(bootstrap, full, 1)
        assert (expired["previous_status"], expired["status"]) == ("available", "expired")
        assert (expired["reason"], expired.get("actor")) == ("expiry date passed", None)
        # The sweep's announcements are settled: the empty lot's only change was the count's.
        records = await read_settled(bootstrap, "lot-status-changed", database_url)
    changes = [json.loads(record.value)["data"] for record in records]
    emptied = [(c["status"], c["reason"]) for c in changes if c["lot_id"] == str(empty)]
    assert emptied == [("depleted", "counted: spoiled")]


async def test_with_auto_ship_an_allocation_waiting_on_a_quarantined_lot_ships_once_it_is_available(
    auto: httpx.AsyncClient, broker: TansuBroker
) -> None:
    lot = uuid.uuid4()
    held_at = datetime.now(UTC)

    def status(name: str, previous: str, at: datetime) -> LotStatusChanged:
        return LotStatusChanged(
            lot_id=lot,
            lot_code=lot_code(lot),
            sku="OJ",
            status=name,
            previous_status=previous,
            reason="test",
            changed_at=at,
        )

    await publish(broker.bootstrap_servers, status("quarantined", "available", held_at))
    await publish(broker.bootstrap_servers, placed("SO-W", 3))
    await _until(auto, "/orders/SO-W", lambda o: o["status"] == "open")
    # The release's re-allocation reached fulfillment before the release's announcement.
    await publish(broker.bootstrap_servers, allocated("SO-W", 1, (1, lot, 3)))
    waiting = await _until(auto, "/orders/SO-W", lambda o: bool(o["allocations"]))
    assert waiting["status"] == "open"

    await publish(
        broker.bootstrap_servers,
        status("available", "quarantined", held_at + timedelta(seconds=1)),
    )
    shipped = await _until(auto, "/orders/SO-W", lambda o: o["status"] == "shipped")
    assert [(line["ordered"], line["shipped"]) for line in shipped["lines"]] == [("3", "3")]
