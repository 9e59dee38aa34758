"""Roles on real service apps (real PostgreSQL and broker): only a shipper ships, and the
shipment names the key that shipped it; only an inventory controller holds, releases and
counts stock. A refused request changes nothing and publishes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.fulfillment.app import Settings as FulfillmentSettings
from services.fulfillment.app import create_app as fulfillment_app
from services.inventory.app import Settings as InventorySettings
from services.inventory.app import create_app as inventory_app
from shared.contracts.events import GoodsReceived, LotAllocated, OrderPlaced
from shared.runtime.auth import Role
from tests.integration.service_apps import ADMIN_KEY, quick_settings, running
from tests.integration.staff import CONTROLLER, KEYS, MANAGER, RECEIVER, SHIPPER, VIEWER, bearer
from tests.kafka_helpers import publish, read_settled

LOT = uuid.uuid4()


def assert_forbidden(response: httpx.Response, route: str, role: Role) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"error": "forbidden", "detail": f"{route} needs the {role} role"}


# ------------------------------------------------------------------ fulfillment


@pytest_asyncio.fixture
async def fulfillment(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    settings = quick_settings(FulfillmentSettings, database_url, broker, api_keys=KEYS)
    async with running(fulfillment_app(settings), api_key=VIEWER) as client:
        yield client


async def allocated_order(client: httpx.AsyncClient, broker: TansuBroker, order_id: str) -> None:
    """An order of 4 units, allocated from LOT, as fulfillment learns it from the topics."""
    await publish(
        broker.bootstrap_servers,
        OrderPlaced(
            order_id=order_id,
            customer={"customer_id": "C-ROLES"},
            lines=[{"line_no": 1, "sku": "OJ", "quantity": 4}],
        ),
        LotAllocated(
            order_id=order_id,
            customer_id="C-ROLES",
            revision=1,
            allocations=[
                {"line_no": 1, "sku": "OJ", "lot_id": LOT, "lot_code": "OJ-ROLES", "quantity": 4}
            ],
        ),
    )

    async def allocated() -> bool:
        response = await client.get(f"/orders/{order_id}")
        return response.status_code == 200 and len(response.json()["allocations"]) == 1

    await wait_until(allocated, timeout=30, what=f"{order_id} allocated")


async def test_only_a_shipper_ships_and_the_shipment_names_the_key_that_shipped_it(
    fulfillment: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    await allocated_order(fulfillment, broker, "SO-R1")
    ship = {"order_id": "SO-R1", "lines": [{"line_no": 1, "quantity": "1"}]}
    for key in (VIEWER, RECEIVER, CONTROLLER, MANAGER):
        attempt = await fulfillment.post("/shipments", json=ship, headers=bearer(key))
        assert_forbidden(attempt, "POST /shipments", Role.SHIPPER)
    anonymous = await fulfillment.post("/shipments", json=ship, headers={"Authorization": ""})
    assert anonymous.status_code == 401, anonymous.text

    by_shipper = await fulfillment.post(
        "/shipments", json=ship, headers=bearer(SHIPPER, **{"X-Actor": "mallory"})
    )
    by_admin = await fulfillment.post(  # admin has every role
        "/shipments", json={"order_id": "SO-R1"}, headers=bearer(ADMIN_KEY)
    )
    order = (await fulfillment.get("/orders/SO-R1")).json()
    published = await read_settled(broker.bootstrap_servers, "order-shipped", database_url)

    assert by_shipper.status_code == 201, by_shipper.text
    assert by_shipper.json()["shipped_by"] == "shipper-sam"  # the key's name, not X-Actor
    assert by_admin.status_code == 201, by_admin.text
    assert by_admin.json()["shipped_by"] == "admin"
    assert sorted((s["shipped_by"], s["lines"][0]["quantity"]) for s in order["shipments"]) == [
        ("admin", "3"),
        ("shipper-sam", "1"),
    ]
    assert len(published) == 2  # the refused attempts published nothing


async def test_a_retried_shipment_still_names_the_key_that_shipped_it(
    fulfillment: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await allocated_order(fulfillment, broker, "SO-R2")
    ship = {"order_id": "SO-R2", "shipment_id": "SH-R2", "lines": [{"line_no": 1, "quantity": "1"}]}
    first = await fulfillment.post("/shipments", json=ship, headers=bearer(SHIPPER))
    again = await fulfillment.post("/shipments", json=ship, headers=bearer(ADMIN_KEY))
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.headers["Idempotent-Replayed"] == "true"
    [shipment] = (await fulfillment.get("/orders/SO-R2")).json()["shipments"]
    assert shipment["shipped_by"] == "shipper-sam"
    assert again.json()["shipped_by"] == "shipper-sam"


# ------------------------------------------------------------------ inventory


def receipt(lot_id: uuid.UUID) -> GoodsReceived:
    return GoodsReceived(
        receipt_id=f"R-{lot_id.hex[:8]}",
        lot_id=lot_id,
        lot_code=f"TEA-{lot_id.hex[:6]}",
        sku="TEA",
        quantity=10,
        location="MAIN",
        received_at=datetime.now(UTC),
    )


async def test_only_an_inventory_controller_holds_releases_and_counts(
    database_url: str, broker: TansuBroker
) -> None:
    settings = quick_settings(InventorySettings, database_url, broker, api_keys=KEYS)
    free, held = uuid.uuid4(), uuid.uuid4()
    async with running(inventory_app(settings), api_key=VIEWER) as client:
        await publish(broker.bootstrap_servers, receipt(free), receipt(held))

        async def stocked() -> bool:
            lots = [await client.get(f"/lots/{lot_id}") for lot_id in (free, held)]
            return all(r.status_code == 200 and r.json()["on_hand"] == "10" for r in lots)

        await wait_until(stocked, timeout=30, what="lots in stock")
        hold = await client.post(
            f"/lots/{held}/hold", json={"reason": "mould"}, headers=bearer(CONTROLLER)
        )
        assert hold.status_code == 200, hold.text

        count = {"lot_id": str(free), "location": "MAIN", "counted": "3", "reason": "count"}
        commands = [
            ("POST /lots/{lot_id}/hold", f"/lots/{free}/hold", {"reason": "x"}),
            ("POST /lots/{lot_id}/release", f"/lots/{held}/release", {"reason": "x"}),
            ("POST /adjustments", "/adjustments", count),
        ]
        attempts = [
            (route, await client.post(path, json=body, headers=bearer(key)))
            for key in (VIEWER, RECEIVER, SHIPPER, MANAGER)
            for route, path, body in commands
        ]
        after: dict[uuid.UUID, Any] = {
            lot_id: (await client.get(f"/lots/{lot_id}")).json() for lot_id in (free, held)
        }
        histories = {
            lot_id: [h["change"] for h in (await client.get(f"/lots/{lot_id}/history")).json()]
            for lot_id in (free, held)
        }

    for route, response in attempts:
        assert_forbidden(response, route, Role.INVENTORY_CONTROLLER)
    assert (after[free]["status"], after[free]["on_hand"]) == ("available", "10")
    assert (after[held]["status"], after[held]["on_hand"]) == ("quarantined", "10")
    assert histories == {free: ["received"], held: ["received", "hold"]}
