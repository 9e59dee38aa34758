"""QC release against a real broker and PostgreSQL: a product marked `qc_required` in
receiving's catalogue is received with `goods-received.qc_required`; inventory holds such a
lot quarantined and never allocates it before a QC release that passed; a failed one makes the
lot rejected for good."""

from __future__ import annotations

import json
import uuid

import httpx

from lottrace.infra import TansuBroker
from tests.integration.service_apps import assert_error
from tests.integration.service_apps import until_served as _until
from tests.integration.test_inventory import inventory, latest_allocations, order, received
from tests.integration.test_receiving import receiving
from tests.integration.test_warehouse_status import statuses_of
from tests.kafka_helpers import publish, read_settled

__all__ = ["inventory", "receiving"]  # fixtures


async def test_a_product_that_requires_qc_is_received_with_qc_required(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> None:
    product = await receiving.put("/products/HERB", json={"qc_required": True})
    assert product.json()["qc_required"] is True
    answer = await receiving.post("/receipts", json={"sku": "HERB", "quantity": "5"})
    other = await receiving.post("/receipts", json={"sku": "SALT", "quantity": "5"})
    assert (answer.json()["qc_required"], other.json()["qc_required"]) == (True, False)
    database_url: str = receiving.database_url  # type: ignore[attr-defined]
    records = await read_settled(broker.bootstrap_servers, "goods-received", database_url)
    flags = {json.loads(r.value)["data"]["sku"]: json.loads(r.value)["data"] for r in records}
    assert (flags["HERB"]["qc_required"], flags["SALT"].get("qc_required", False)) == (True, False)


async def test_a_qc_lot_is_allocated_only_after_it_passed_and_never_once_it_failed(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    passes, fails = uuid.uuid4(), uuid.uuid4()
    await publish(
        bootstrap,
        received("HERB", 10, days=30, lot_id=passes).model_copy(update={"qc_required": True}),
        received("HERB", 10, days=20, lot_id=fails).model_copy(update={"qc_required": True}),
    )
    waiting = await _until(inventory, f"/lots/{passes}", lambda body: body["on_hand"] == "10")
    assert (waiting["status"], waiting["qc_state"]) == ("quarantined", "pending")
    await publish(bootstrap, order("SO-H", "HERB", 5))
    first = (await latest_allocations(bootstrap, orders=1))["SO-H"]
    assert (first["allocations"], first["backordered"][0]["quantity"]) == ([], "5")

    plain = await inventory.post(f"/lots/{passes}/release", json={"reason": "looks fine"})
    assert "qc_result" in assert_error(plain, 409, "qc_result_required")["detail"]
    failed = await inventory.post(f"/lots/{fails}/release", json={"qc_result": "failed"})
    assert (failed.json()["status"], failed.json()["qc_state"]) == ("rejected", "failed")
    again = await inventory.post(f"/lots/{fails}/release", json={"qc_result": "passed"})
    assert_error(again, 409, "lot_rejected")
    passed = await inventory.post(f"/lots/{passes}/release", json={"qc_result": "passed"})
    assert (passed.json()["status"], passed.json()["qc_state"]) == ("available", "passed")

    allocated = await _until(inventory, "/orders/SO-H", lambda body: body["reservations"])
    assert [(r["lot_id"], r["quantity"]) for r in allocated["reservations"]] == [(str(passes), "5")]
    [rejected] = await statuses_of(bootstrap, fails, 1)
    assert (rejected["previous_status"], rejected["status"]) == ("quarantined", "rejected")
    [released] = await statuses_of(bootstrap, passes, 1)
    assert (released["status"], released["reason"]) == ("available", "QC passed")


async def test_a_failed_qc_result_on_an_allocated_lot_gives_its_reservations_to_another(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    failing, other = uuid.uuid4(), uuid.uuid4()
    await publish(
        bootstrap,
        received("MINT", 10, days=10, lot_id=failing),
        received("MINT", 10, days=40, lot_id=other),
    )
    await _until(inventory, f"/lots/{other}", lambda body: body["on_hand"] == "10")
    await publish(bootstrap, order("SO-M", "MINT", 4))
    first = await _until(inventory, "/orders/SO-M", lambda body: body["reservations"])
    assert [r["lot_id"] for r in first["reservations"]] == [str(failing)]  # FEFO

    failed = await inventory.post(f"/lots/{failing}/release", json={"qc_result": "failed"})
    assert (failed.json()["status"], failed.json()["reserved"]) == ("rejected", "0")
    moved = await _until(
        inventory,
        "/orders/SO-M",
        lambda body: [r["lot_id"] for r in body["reservations"]] == [str(other)],
    )
    assert [r["quantity"] for r in moved["reservations"]] == ["4"]
