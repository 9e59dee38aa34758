"""The warehouse floor across the whole platform (the four services as processes, the broker,
PostgreSQL): fulfillment refuses a held lot from `lot-status-changed` alone, a QC-required
receipt waits for its release before it is allocated, and moves and returns to vendor reach
recall's EPCIS document and FSMA 204 sheet."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from lottrace.infra import wait_until
from shared.contracts.events import LotStatusChanged
from tests.e2e.conftest import Clients
from tests.e2e.test_orange_juice import allocated, eventually, place_order, receive, unique
from tests.e2e.test_reports import fsma_csv_rows
from tests.kafka_helpers import publish, read_topic

GTIN = "09501101530003"


async def stocked(clients: Clients, lot_id: str, on_hand: str) -> dict[str, Any]:
    return await eventually(
        lambda: clients.inventory.get(f"/lots/{lot_id}"), lambda lot: lot["on_hand"] == on_hand
    )


async def announced(clients: Clients, lot_id: str, reason: str) -> dict[str, Any]:
    """The `lot-status-changed` published for the lot with this reason."""
    found: list[dict[str, Any]] = []

    async def published() -> bool:
        records = await read_topic(clients.bootstrap, "lot-status-changed", at_least=0)
        found[:] = [
            data
            for data in (json.loads(record.value)["data"] for record in records)
            if data["lot_id"] == lot_id and data["reason"] == reason
        ]
        return bool(found)

    await wait_until(published, timeout=30, interval=0.2, what=f"lot {lot_id}: {reason}")
    return found[0]


async def test_fulfillment_refuses_a_lot_announced_held_before_any_reallocation(
    clients: Clients,
) -> None:
    sku = unique("TEA")
    lot = await receive(clients, sku, 10, expires_in=60)
    order_id = unique("SO")
    await place_order(clients, order_id, unique("C"), sku, 4)
    assert [a["lot_id"] for a in (await allocated(clients, order_id))["allocations"]] == [
        lot["lot_id"]
    ]

    # The lot announced held on `lot-status-changed` alone, as when inventory's re-allocation
    # lags behind its announcement: here no re-allocation comes at all, and fulfillment
    # refuses from the announcement.
    held = LotStatusChanged(
        lot_id=lot["lot_id"],
        lot_code=lot["lot_code"],
        sku=sku,
        status="quarantined",
        previous_status="available",
        reason="quality hold: leaking case",
        changed_at=datetime.now(UTC),
    )
    await publish(clients.bootstrap, held, source="/lottrace/inventory")
    await eventually(
        lambda: clients.fulfillment.get(f"/orders/{order_id}"),
        lambda order: order["allocations"][0]["blocked"] == "quarantined",
    )
    refused = await clients.fulfillment.post("/shipments", json={"order_id": order_id})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "lot_blocked"
    assert refused.json()["detail"].startswith(f"lot {lot['lot_code']} is quarantined")
    order = (await clients.fulfillment.get(f"/orders/{order_id}")).json()
    assert order["allocation_revision"] == 1  # no re-allocation was needed

    # A real hold, through inventory: announced with who and why, and nothing ships from it.
    hold = await clients.inventory.post(f"/lots/{lot['lot_id']}/hold", json={"reason": "mould"})
    assert hold.status_code == 200, hold.text
    announcement = await announced(clients, lot["lot_id"], "quality hold: mould")
    assert (announcement["status"], announcement["actor"]) == ("quarantined", "admin")
    await eventually(
        lambda: clients.fulfillment.get(f"/orders/{order_id}"),
        lambda order: order["backordered"] and not order["allocations"],
    )
    again = await clients.fulfillment.post("/shipments", json={"order_id": order_id})
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "nothing_to_ship"


async def test_a_qc_required_receipt_is_allocated_only_after_its_release(clients: Clients) -> None:
    sku = unique("BASIL")
    product = await clients.receiving.put(f"/products/{sku}", json={"qc_required": True})
    assert product.status_code == 200, product.text
    lot = await receive(clients, sku, 10, expires_in=30)
    assert lot["qc_required"] is True
    waiting = await stocked(clients, lot["lot_id"], "10")
    assert (waiting["status"], waiting["qc_state"]) == ("quarantined", "pending")

    order_id = unique("SO")
    await place_order(clients, order_id, unique("C"), sku, 3)
    backordered = await eventually(
        lambda: clients.fulfillment.get(f"/orders/{order_id}"),
        lambda order: order["allocation_revision"] >= 1,
    )
    assert (backordered["allocations"], len(backordered["backordered"])) == ([], 1)

    released = await clients.inventory.post(
        f"/lots/{lot['lot_id']}/release", json={"qc_result": "passed", "reason": "lab 2231"}
    )
    assert released.status_code == 200, released.text
    order = await allocated(clients, order_id)
    assert [(a["lot_id"], a["quantity"]) for a in order["allocations"]] == [(lot["lot_id"], "3")]


async def test_a_move_and_a_return_to_vendor_reach_epcis_and_fsma_204(clients: Clients) -> None:
    sku, code = unique("ORANGES"), unique("GROVE")
    supplier = {"supplier_id": unique("FARM"), "name": "Grove Farms"}
    lot = await receive(
        clients, sku, 20, expires_in=30, gtin=GTIN, lot_code=code, supplier=supplier
    )
    lot_id = lot["lot_id"]
    await stocked(clients, lot_id, "20")

    move = {"lot_id": lot_id, "from": "MAIN", "to": "BAY-2", "quantity": "5", "reason": "slotting"}
    moved = await clients.inventory.post(
        "/moves", json={**move, "scans": [f"(01){GTIN}(10){code}"]}
    )
    assert moved.status_code == 201, moved.text
    rtv = {"quantity": "6", "rma": "RMA-77", "reason": "failed QC: mould", "location": "MAIN"}
    returned = await clients.inventory.post(f"/lots/{lot_id}/return-to-vendor", json=rtv)
    assert returned.status_code == 200, returned.text

    movements = await eventually(
        lambda: clients.recall.get(f"/trace/lots/{lot_id}/movements"),
        lambda body: len(body["movements"]) == 2,
    )
    assert [(m["kind"], m["actor"], m["reason"]) for m in movements["movements"]] == [
        ("move", "admin", "slotting"),
        ("return-to-vendor", "admin", "failed QC: mould"),
    ]
    epcis = await clients.recall.get("/reports/epcis", params={"lot_id": lot_id})
    events = epcis.json()["epcisBody"]["eventList"]
    assert [(e["bizStep"], e["disposition"]) for e in events] == [
        ("receiving", "in_progress"),
        ("storing", "in_progress"),
        ("shipping", "returned"),
    ]
    assert events[2]["destinationList"] == [
        {
            "type": "owning_party",
            "destination": f"urn:lottrace:party:supplier:{supplier['supplier_id']}",
        }
    ]

    rows = await fsma_csv_rows(clients, lot_code=code)
    assert [row["Event Type"] for row in rows] == ["Receiving", "Shipping"]
    shipping = rows[1]
    assert shipping["Ship-To (Immediate Subsequent Recipient)"] == "Grove Farms"
    assert shipping["Ship-To ID"] == supplier["supplier_id"]
    assert (shipping["Reference Document Number"], shipping["Quantity"]) == ("RMA-77", "6")
