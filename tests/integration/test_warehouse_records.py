"""Moves and returns to vendor reach the lot's records, against a real broker and PostgreSQL:
inventory announces them on `lot-movements` through its outbox, and recall shows them in the
lot's movements, its EPCIS document and the FSMA 204 sheet; a re-sent movement changes
nothing."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from bench.measure import wait_caught_up
from lottrace.infra import TansuBroker
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as create_recall
from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import LotMoved
from shared.contracts.types import Supplier
from tests.conftest import PostgresServer
from tests.integration.service_apps import quick_settings, running
from tests.integration.service_apps import until_served as _until
from tests.integration.test_inventory import inventory, lot_code_of, received
from tests.kafka_helpers import headers_of, produce, publish, read_topic

__all__ = ["inventory"]  # fixture

GTIN = "09501101530003"


@pytest_asyncio.fixture
async def recall(
    postgres_server: PostgresServer, broker: TansuBroker
) -> AsyncIterator[httpx.AsyncClient]:
    """Recall on a database of its own, beside inventory's."""
    async with (
        postgres_server.fresh_database() as url,
        running(create_recall(quick_settings(RecallSettings, url, broker))) as client,
    ):
        yield client


def fsma_rows_of(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_moves_and_returns_to_vendor_reach_epcis_and_fsma_204_once(
    inventory: httpx.AsyncClient, recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    basil = uuid.uuid4()
    supplier = Supplier(supplier_id="FARM-B", name="Farm B")
    receipt = received("BASIL", 10, days=30, lot_id=basil)
    await publish(bootstrap, receipt.model_copy(update={"gtin": GTIN, "supplier": supplier}))
    await _until(inventory, f"/lots/{basil}", lambda body: body["on_hand"] == "10")
    await _until(recall, f"/trace/lots/{basil}/forward", lambda body: body["lot"]["received"])

    case = f"(01){GTIN}(10){lot_code_of('BASIL', basil)}"
    move = {"lot_id": str(basil), "from": "MAIN", "to": "BAY-2", "quantity": "4"}
    moved = await inventory.post("/moves", json={**move, "scans": [case], "reason": "slotting"})
    assert moved.status_code == 201, moved.text
    rtv = {"quantity": "3", "rma": "RMA-9", "reason": "failed QC: mould", "location": "MAIN"}
    returned = await inventory.post(f"/lots/{basil}/return-to-vendor", json=rtv)
    assert returned.status_code == 200, returned.text

    history = await _until(
        recall, f"/trace/lots/{basil}/movements", lambda body: len(body["movements"]) == 2
    )
    assert [
        (m["kind"], m["quantity"], m["from_location"], m["to_location"], m["actor"], m["reason"])
        for m in history["movements"]
    ] == [
        ("move", "4", "MAIN", "BAY-2", "qa-anna", "slotting"),
        ("return-to-vendor", "3", "MAIN", None, "qa-anna", "failed QC: mould"),
    ]
    assert (history["movements"][1]["supplier_id"], history["movements"][1]["rma"]) == (
        "FARM-B",
        "RMA-9",
    )

    await _records_show_the_move_and_the_return(recall, basil)

    # The same movements again, as a relay re-publishing after a crash would send them, and
    # under new CloudEvents ids, as another producer might: the movement ids keep them once.
    records = await read_topic(bootstrap, "lot-movements", at_least=2)
    sent = [LotMoved.model_validate(json.loads(record.value)["data"]) for record in records]
    await publish(bootstrap, *sent, ids=[json.loads(r.value)["id"] for r in records])
    await publish(bootstrap, *sent)
    await wait_caught_up(bootstrap, "recall", ["lot-movements"], timeout=30)
    again = (await recall.get(f"/trace/lots/{basil}/movements")).json()
    assert again == history
    await _records_show_the_move_and_the_return(recall, basil)


async def _records_show_the_move_and_the_return(recall: httpx.AsyncClient, lot: uuid.UUID) -> None:
    """EPCIS: receiving, the move (storing) and the return (shipping, returned, to FARM-B);
    FSMA 204: the receipt and one Shipping row to the supplier under the RMA."""
    document = (await recall.get("/reports/epcis", params={"lot_id": str(lot)})).json()
    events: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    assert [(e["bizStep"], e.get("disposition")) for e in events] == [
        ("receiving", "in_progress"),
        ("storing", "in_progress"),
        ("shipping", "returned"),
    ]
    move, back = events[1], events[2]
    assert move["bizLocation"] == {"id": "urn:lottrace:location:BAY-2"}
    assert move["quantityList"][0]["quantity"] == 4
    assert back["destinationList"] == [
        {"type": "owning_party", "destination": "urn:lottrace:party:supplier:FARM-B"}
    ]
    assert back["quantityList"][0]["quantity"] == 3

    sheet = fsma_rows_of(
        await recall.get("/reports/fsma204", params={"lot_code": lot_code_of("BASIL", lot)})
    )
    assert [row["Event Type"] for row in sheet] == ["Receiving", "Shipping"]
    shipping = sheet[1]
    assert (
        shipping["Ship-To (Immediate Subsequent Recipient)"],
        shipping["Ship-To ID"],
        shipping["Reference Document Type"],
        shipping["Reference Document Number"],
        shipping["Quantity"],
        shipping["Event Location (Receive / Transform / Ship-From)"],
        shipping["Traceability Lot Code (TLC)"],
    ) == (
        "Farm B",
        "FARM-B",
        "Return Authorization (RMA)",
        "RMA-9",
        "3",
        "MAIN",
        f"(01){GTIN}(10){lot_code_of('BASIL', lot)}",
    )


def without(message: OutgoingMessage, field: str) -> OutgoingMessage:
    """The message with one field of its event's data set to null, breaking the contract."""
    envelope = json.loads(message.value)
    envelope["data"][field] = None
    return OutgoingMessage(
        message.topic, message.key, json.dumps(envelope).encode(), message.headers
    )


async def test_a_move_naming_no_destination_goes_to_the_dead_letter_topic_named(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    lot = uuid.uuid4()
    move = LotMoved(
        movement_id="MV-BROKEN",
        lot_id=lot,
        lot_code="BASIL-1",
        sku="BASIL",
        kind="move",
        quantity=2,
        from_location="MAIN",
        to_location="BAY-2",
        moved_at=datetime.now(UTC),
    )
    await produce(broker.bootstrap_servers, [without(encode(move, source="/tests"), "to_location")])
    [dead] = await read_topic(broker.bootstrap_servers, "lot-movements.dlq")
    assert headers_of(dead)["error_type"] == "contract_violation"
    assert "to_location" in headers_of(dead)["error_message"]
    assert (await recall.get(f"/trace/lots/{lot}/movements")).status_code == 404
