"""The warehouse floor against a real broker and PostgreSQL: scan-checked moves between
locations, allocations that name where they pick, customer returns held for inspection and
their disposition, and returns to the supplier; bad input refused with nothing applied."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from lottrace.infra import TansuBroker
from shared.contracts.events import GoodsReturned
from shared.contracts.types import Supplier
from tests.integration.events import shipment_of
from tests.integration.service_apps import assert_error
from tests.integration.service_apps import until_served as _until
from tests.integration.test_inventory import (
    inventory,
    latest_allocations,
    order,
    recall_of,
    received,
)
from tests.kafka_helpers import headers_of, publish, read_topic

__all__ = ["inventory"]  # fixture

GTIN = "09501101530003"


def code(lot: uuid.UUID, sku: str) -> str:
    return f"{sku}-{str(lot)[:6]}"  # as test_inventory.received names it


def places(lot: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {p["location"]: (p["on_hand"], p["held"]) for p in lot["locations"]}


async def test_moves_check_scans_and_quantities_and_allocations_name_their_location(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    oj = uuid.uuid4()
    await publish(
        bootstrap, received("OJ", 10, days=30, lot_id=oj).model_copy(update={"gtin": GTIN})
    )
    await _until(inventory, f"/lots/{oj}", lambda body: body["on_hand"] == "10")
    case = f"(01){GTIN}(10){code(oj, 'OJ')}"
    move = {"lot_id": str(oj), "from": "MAIN", "to": "BAY-2", "quantity": "4", "reason": "slotting"}

    other_lot = await inventory.post("/moves", json={**move, "scans": [f"(01){GTIN}(10)OTHER"]})
    assert "OTHER" in assert_error(other_lot, 409, "scan_mismatch")["detail"]
    for wrong, status, error in [
        ({"quantity": "11"}, 409, "insufficient_stock"),
        ({"from": "DOCK-9"}, 409, "lot_not_at_location"),
        ({"to": "MAIN"}, 422, "same_location"),
        ({"quantity": "-2"}, 422, "invalid_request"),
    ]:
        assert_error(await inventory.post("/moves", json={**move, **wrong}), status, error)
    assert places((await inventory.get(f"/lots/{oj}")).json()) == {"MAIN": ("10", False)}

    moved = await inventory.post("/moves", json={**move, "scans": [case, case]})
    assert moved.status_code == 201, moved.text
    assert places(moved.json()["lot"]) == {"BAY-2": ("4", False), "MAIN": ("6", False)}
    history = (await inventory.get(f"/lots/{oj}/history")).json()
    assert [(h["change"], h["location"], h["cause"], h["detail"]) for h in history[-2:]] == [
        ("moved_out", "MAIN", "user:qa-anna", "to BAY-2: slotting"),
        ("moved_in", "BAY-2", "user:qa-anna", "from MAIN: slotting"),
    ]

    # FEFO picks the lot; within it, the location holding least empties first.
    await publish(bootstrap, order("SO-M", "OJ", 5))
    allocation = (await latest_allocations(bootstrap, orders=1))["SO-M"]
    assert [(a["location"], a["quantity"]) for a in allocation["allocations"]] == [
        ("BAY-2", "4"),
        ("MAIN", "1"),
    ]
    [row] = (await inventory.get("/stock", params={"sku": "OJ"})).json()
    assert [(p["location"], p["available"]) for p in row["locations"]] == [
        ("BAY-2", "0"),
        ("MAIN", "5"),
    ]


async def test_returns_are_held_for_inspection_flagged_beyond_what_shipped_then_disposed(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    tea = uuid.uuid4()
    receipt = received("TEA", 10, days=30, lot_id=tea)
    await publish(bootstrap, receipt, order("SO-R", "TEA", 6))
    await _until(inventory, f"/lots/{tea}", lambda body: body["reserved"] == "6")
    await publish(
        bootstrap, shipment_of({"customer_id": "C-SO-R"}, receipt, quantity=6, number="R")
    )
    await _until(inventory, f"/lots/{tea}", lambda body: body["shipped"] == "6")

    def returned(quantity: str, lot_code: str = code(tea, "TEA")) -> dict[str, Any]:
        line = {"line_no": 1, "sku": "TEA", "lot_code": lot_code, "quantity": quantity}
        return {
            "return_id": f"RT-{uuid.uuid4().hex[:8]}",
            "customer": {"customer_id": "C-SO-R"},
            "lines": [{**line, "reason": "damaged"}],
        }

    unknown = await inventory.post("/returns", json=returned("1", lot_code="TEA-NOPE"))
    assert "TEA-NOPE" in assert_error(unknown, 404, "lot_not_found")["detail"]
    accepted = await inventory.post("/returns", json=returned("2"))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["location"] == "RETURNS"
    held = await _until(inventory, f"/lots/{tea}", lambda body: body["returned"] == "2")
    assert places(held) == {"MAIN": ("4", False), "RETURNS": ("2", True)}
    assert (held["available"], held["status"]) == ("4", "available")

    # 2 + 6 returned of the 6 shipped: taken in (the units are here), 2 flagged.
    await inventory.post("/returns", json=returned("6"))
    await _until(inventory, f"/lots/{tea}", lambda body: body["returned"] == "8")
    await publish(bootstrap, order("SO-R2", "TEA", 7))  # held returns are never allocated
    first = (await latest_allocations(bootstrap, orders=2))["SO-R2"]
    assert (first["allocations"][0]["quantity"], first["backordered"][0]["quantity"]) == ("4", "3")

    restock = {"lot_id": str(tea), "from": "RETURNS", "to": "MAIN", "quantity": "3"}
    assert (await inventory.post("/moves", json=restock)).status_code == 201
    await _until(inventory, "/orders/SO-R2", lambda body: body["lines"][0]["backordered"] == "0")
    destroy = {"lot_id": str(tea), "location": "RETURNS", "quantity": "-5", "reason": "destroyed"}
    assert (await inventory.post("/adjustments", json=destroy)).status_code == 201
    done = (await inventory.get(f"/lots/{tea}")).json()
    assert places(done) == {"MAIN": ("7", False), "RETURNS": ("0", True)}
    flagged = [h["detail"] for h in (await inventory.get(f"/lots/{tea}/history")).json()]
    assert any("flagged: 2 beyond what was shipped" in (d or "") for d in flagged)


async def test_a_return_of_a_recalled_lot_is_recalled_stock_and_an_unknown_lot_is_dead_lettered(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    apple = uuid.uuid4()
    await publish(bootstrap, received("APPLE", 5, days=30, lot_id=apple), recall_of(apple, "RC-9"))
    await _until(inventory, f"/lots/{apple}", lambda body: body["status"] == "recalled")

    def back(lot_id: uuid.UUID, return_id: str) -> GoodsReturned:
        return GoodsReturned(
            return_id=return_id,
            customer={"customer_id": "C-9"},
            recall_id="RC-9",
            returned_at=datetime.now(UTC),
            lines=[
                {"line_no": 1, "sku": "APPLE", "lot_id": lot_id, "quantity": 3, "reason": "recall"}
            ],
        )

    nowhere = uuid.uuid4()
    await publish(bootstrap, back(nowhere, "RET-X"), back(apple, "RET-9"), back(apple, "RET-9"))
    lot = await _until(inventory, f"/lots/{apple}", lambda body: body["returned"] == "3")
    assert (lot["status"], places(lot)["RETURNS"]) == ("recalled", ("3", True))
    history = (await inventory.get(f"/lots/{apple}/history")).json()
    assert "recalled stock" in history[-1]["detail"]
    [dead] = await read_topic(bootstrap, "goods-returned.dlq")
    assert headers_of(dead)["error_type"] == "unknown_lot"
    assert str(nowhere) in headers_of(dead)["error_message"]
    assert json.loads(dead.value)["data"]["return_id"] == "RET-X"


async def test_return_to_vendor_takes_the_stock_out_with_its_rma_and_who(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    herb = uuid.uuid4()
    lot = received("HERB", 8, days=30, lot_id=herb).model_copy(
        update={"qc_required": True, "supplier": Supplier(supplier_id="FARM-B")}
    )
    await publish(broker.bootstrap_servers, lot)
    await _until(inventory, f"/lots/{herb}", lambda body: body["on_hand"] == "8")
    await inventory.post(f"/lots/{herb}/release", json={"qc_result": "failed", "reason": "mould"})
    rtv = {"quantity": "8", "rma": "RMA-77", "reason": "failed QC: mould"}

    too_many = await inventory.post(f"/lots/{herb}/return-to-vendor", json={**rtv, "quantity": "9"})
    assert_error(too_many, 409, "insufficient_stock")
    negative = await inventory.post(
        f"/lots/{herb}/return-to-vendor", json={**rtv, "quantity": "-1"}
    )
    assert negative.status_code == 422
    sent = await inventory.post(f"/lots/{herb}/return-to-vendor", json=rtv)
    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert (body["on_hand"], body["vendor_returned"], body["status"]) == ("0", "8", "rejected")
    last = (await inventory.get(f"/lots/{herb}/history")).json()[-1]
    assert (last["change"], Decimal(last["quantity"]), last["cause"]) == (
        "returned_to_vendor",
        Decimal(8),
        "user:qa-anna",
    )
    assert last["detail"] == "RMA RMA-77 to supplier FARM-B: failed QC: mould"
