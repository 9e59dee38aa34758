"""The recall loop against a real broker and PostgreSQL: five customers answer a recall in
every way (Kafka and HTTP), the effectiveness check counts them exactly, reminders go to the
silent one only, and close waits for the target or an audited override."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import openpyxl
import pytest_asyncio
from fastapi import FastAPI

from lottrace.infra import TansuBroker, wait_until
from services.recall.app import Settings, create_app
from services.recall.reminders import ReminderPolicy, send_reminders
from shared.contracts.events import (
    GoodsReceived,
    GoodsReturned,
    LotStatusChanged,
    RecallResponse,
)
from tests.integration.events import applied, event_id, lot, shipment_of
from tests.integration.service_apps import assert_error, quick_settings, running, until_served
from tests.kafka_helpers import headers_of, publish, read_settled, read_topic

CUSTOMERS = ["C1", "C2", "C3", "C4", "C5"]


@pytest_asyncio.fixture
async def app(database_url: str, broker: TansuBroker) -> FastAPI:
    return create_app(quick_settings(Settings, database_url, broker))


@pytest_asyncio.fixture
async def recall(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:
        yield client


async def issued(client: httpx.AsyncClient, broker: TansuBroker, cheese: GoodsReceived) -> str:
    """A class I recall of `cheese`, once each customer got 10 units of it and was notified."""
    shipments = [shipment_of({"customer_id": c}, cheese, quantity=10) for c in CUSTOMERS]
    await publish(broker.bootstrap_servers, cheese, *shipments)
    await until_served(
        client,
        f"/trace/lots/{cheese.lot_id}/forward",
        lambda body: body["totals"]["shipment_lines"] == len(CUSTOMERS),
    )
    response = await client.post(
        "/recalls",
        json={"reason": "listeria", "classification": "I", "scope": {"lot_codes": ["CHEESE-1"]}},
    )
    assert response.status_code == 202, response.text
    recall_id = str(response.json()["recall_id"])
    await until_served(client, f"/recalls/{recall_id}", lambda body: body["notices_complete"])
    return recall_id


async def respond(
    client: httpx.AsyncClient, recall_id: str, customer_id: str, kind: str, **more: Any
) -> httpx.Response:
    body = {"response_id": f"R-{customer_id}-{kind}", "customer_id": customer_id, "kind": kind}
    return await client.post(f"/recalls/{recall_id}/responses", json={**body, **more})


def kafka_response(recall_id: str, customer_id: str, kind: str) -> RecallResponse:
    return RecallResponse(
        response_id=f"K-{recall_id}-{customer_id}-{kind}",
        recall_id=recall_id,
        customer_id=customer_id,
        kind=kind,
        responded_at=datetime.now(UTC),
        channel="email",
    )


def status(lot: GoodsReceived, now: str, before: str, at: datetime) -> LotStatusChanged:
    return LotStatusChanged(
        lot_id=lot.lot_id, lot_code=lot.lot_code, sku=lot.sku, status=now,
        previous_status=before, reason="recall", changed_at=at,
    )  # fmt: skip


async def reminders_at(app: FastAPI, hours: float) -> int:
    """Reminders sent by a check `hours` from now, under the default policy."""
    now = datetime.now(UTC) + timedelta(hours=hours)
    return int(
        await app.state.runtime.database.run(
            lambda unit: send_reminders(
                app.state.recalls, unit, now=now, policy=ReminderPolicy(most=2)
            )
        )
    )


async def reminder_notices(broker: TansuBroker, recall_id: str, count: int) -> list[Any]:
    found: list[Any] = []

    async def arrived() -> bool:
        records = await read_topic(broker.bootstrap_servers, "recall-issued", at_least=0)
        found[:] = [
            (data["customer"]["customer_id"], data["reminder"])
            for data in (json.loads(record.value)["data"] for record in records)
            if data.get("recall_id") == recall_id and data.get("reminder", 0) > 0
        ]
        return len(found) >= count

    await wait_until(arrived, timeout=30, what=f"{count} reminders")
    return sorted(found)


async def test_five_customers_answer_and_the_recall_closes_only_when_effective_or_overridden(
    app: FastAPI, recall: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    cheese = lot("CHEESE-1")
    recall_id = await issued(recall, broker, cheese)

    # C1 acknowledges and C3 bounces by e-mail (Kafka); C4 sends 4 units back unprompted.
    returned = GoodsReturned(
        return_id="RET-C4",
        customer={"customer_id": "C4"},
        returned_at=datetime.now(UTC),
        lines=[{"line_no": 1, "sku": "CHEESE", "lot_code": "CHEESE-1", "quantity": 4,
                "reason": "recall"}],
    )  # fmt: skip
    # Inventory holds the lot as recalled; an older status arriving late changes nothing.
    now = datetime.now(UTC)
    held = status(cheese, "recalled", "available", now)
    stale = status(cheese, "quarantined", "available", now - timedelta(hours=1))
    statuses = await publish(broker.bootstrap_servers, held, stale)
    await publish(
        broker.bootstrap_servers,
        kafka_response(recall_id, "C1", "acknowledged"),
        kafka_response(recall_id, "C3", "bounced"),
        kafka_response("NO-SUCH-RECALL", "C1", "acknowledged"),
        returned,
    )
    # The call centre: C2 acknowledges; C5 destroyed 12 (2 more than it was shipped).
    assert (await respond(recall, recall_id, "C2", "acknowledged")).json()["recorded"] is True
    assert (await respond(recall, recall_id, "C2", "acknowledged")).json()["recorded"] is False
    outside = await respond(
        recall, recall_id, "C5", "units-reported", units=[{"lot_code": "BRIE-9", "destroyed": 12}]
    )
    assert_error(outside, 409, "lot_not_in_recall")
    negative = await respond(
        recall, recall_id, "C5", "units-reported", units=[{"lot_code": "CHEESE-1", "destroyed": -1}]
    )
    assert negative.status_code == 422, negative.text
    assert_error(
        await respond(recall, recall_id, "C9", "acknowledged"), 409, "customer_not_affected"
    )
    destroyed = await respond(
        recall, recall_id, "C5", "units-reported", units=[{"lot_code": "CHEESE-1", "destroyed": 12}]
    )
    assert destroyed.json()["recorded"] is True, destroyed.text  # nothing of the refusal stayed

    path = f"/recalls/{recall_id}/effectiveness"
    check = await until_served(
        recall,
        path,
        # Every answer counted, the bounce from the topic too, before the figures are read.
        lambda body: (
            body["customers"]["acknowledged"] == 3
            and body["customers"]["bounced"] == 1
            and body["units"]["returned"] != "0"
        ),
    )
    assert check["customers"] == {
        "affected": 5, "notified": 5, "delivered": 3, "bounced": 1, "acknowledged": 3, "silent": 1,
    }  # fmt: skip
    units = {k: v for k, v in check["units"].items() if k != "effectiveness_percent"}
    assert units == {"shipped": "50", "returned": "4", "destroyed": "12", "on_hand": "0",
                     "unaccounted": "36"}  # fmt: skip
    assert check["effectiveness_percent"] == "28.0"  # (4 + 10 of the 12) of 50
    assert [(o["customer_id"], o["destroyed"]) for o in check["over_returned"]] == [("C5", "12")]
    assert [o["customer_id"] for o in check["outstanding"]] == ["C1", "C2", "C3", "C4"]
    assert (check["check_level"], check["sample"]) == ("A", CUSTOMERS)
    exported = await recall.get(path, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["customer_id"], r["silent"], r["unaccounted"]) for r in rows] == [
        ("C1", "false", "10"), ("C2", "false", "10"), ("C3", "true", "10"),
        ("C4", "false", "6"), ("C5", "false", "0"),
    ]  # fmt: skip
    sheets = openpyxl.load_workbook(
        io.BytesIO((await recall.get(path, params={"format": "xlsx"})).content)
    )
    assert sheets.sheetnames == ["Summary", "Lots", "Customers"]
    assert sheets["Lots"]["A2"].value == "CHEESE-1"

    ids = [event_id(message) for message in statuses]
    await wait_until(lambda: applied(database_url, ids), timeout=30, what="statuses applied")
    [affected] = (await recall.get(f"/recalls/{recall_id}")).json()["affected_lots"]
    assert affected["status"] == "recalled"
    dead = await read_topic(broker.bootstrap_servers, "recall-responses.dlq")
    assert [headers_of(record)["error_type"] for record in dead] == ["recall_not_found"]

    # Reminders: only the silent C3, once per number, never past the maximum or the close.
    assert await reminders_at(app, 1) == 0
    assert await reminders_at(app, 49) == 1
    assert await reminders_at(app, 49) == 0
    assert await reminders_at(app, 98) == 1
    assert await reminders_at(app, 147) == 0  # two at most
    assert await reminder_notices(broker, recall_id, 2) == [("C3", 1), ("C3", 2)]

    assert_error(await recall.post(f"/recalls/{recall_id}/close"), 409, "below_target")
    closed = await recall.post(
        f"/recalls/{recall_id}/close", json={"override_reason": "C1-C4 sold out; FDA agreed"}
    )
    assert closed.status_code == 200, closed.text
    view = (await recall.get(f"/recalls/{recall_id}")).json()
    assert (view["status"], view["closed_by"]) == ("closed", "admin")
    assert view["close_override"] == "C1-C4 sold out; FDA agreed"
    assert await reminders_at(app, 1000) == 0


async def test_a_supplier_lot_code_recalls_exactly_the_lots_received_with_it(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    def received(code: str, supplier: str, supplier_lot: str, **more: Any) -> GoodsReceived:
        return lot(code, supplier=supplier, **more).model_copy(
            update={"supplier_lot_code": supplier_lot, "gtin": "09506000134352"}
        )

    flour = received("FLOUR-1", "MILL-A", "S-77")
    other_lot = received("FLOUR-2", "MILL-A", "S-78")
    other_mill = received("FLOUR-3", "MILL-B", "S-77")
    bread = lot("BREAD-1", inputs=[flour])
    await publish(broker.bootstrap_servers, flour, other_lot, other_mill, bread)
    await until_served(recall, f"/trace/lots/{bread.lot_id}/backward", lambda body: body["inputs"])

    async def recalled(scope: dict[str, Any]) -> list[str]:
        body = {"reason": "aflatoxin, supplier notice 2026-14", "scope": scope}
        response = await recall.post("/recalls", json=body)
        assert response.status_code == 202, response.text
        view = await recall.get(f"/recalls/{response.json()['recall_id']}")
        return sorted(lot["lot_code"] for lot in view.json()["affected_lots"])

    by_supplier = {"supplier_lot_codes": ["S-77"], "supplier_id": "MILL-A"}
    assert await recalled(by_supplier) == ["BREAD-1", "FLOUR-1"]
    assert await recalled({"supplier_lot_codes": ["S-77"], "sku": "FLOUR"}) == [
        "BREAD-1", "FLOUR-1", "FLOUR-3",
    ]  # fmt: skip
    assert await recalled({"gtin": "09506000134352", "supplier_id": "MILL-B"}) == ["FLOUR-3"]
    alone = await recall.post(
        "/recalls", json={"reason": "x", "scope": {"supplier_lot_codes": ["S-77"]}}
    )
    assert alone.status_code == 422, alone.text


async def test_a_drill_computes_and_times_a_recall_and_sends_nothing(
    recall: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    cheese = lot("CHEESE-1")
    pizza = lot("PIZZA-1", inputs=[cheese])
    shipments = [shipment_of({"customer_id": c}, pizza, quantity=2) for c in ("C1", "C2")]
    await publish(broker.bootstrap_servers, cheese, pizza, *shipments)
    await until_served(
        recall, f"/trace/lots/{cheese.lot_id}/forward", lambda b: b["totals"]["shipment_lines"] == 2
    )
    body = {"reason": "drill", "classification": "II", "scope": {"lot_codes": ["CHEESE-1"]}}
    response = await recall.post("/recalls", json={**body, "drill": True})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["drill"], accepted["status"], accepted["affected_lots"]) == (True, "drill", 2)
    assert (accepted["affected_customer_count"], accepted["shipped_quantity"]) == (2, "4")

    [drill] = (await recall.get("/drills")).json()
    assert drill["drill_id"] == accepted["recall_id"]
    assert (drill["check_level"], drill["sample_size"]) == ("B", 1)
    assert set(drill["stages"]) == {"scope", "customers", "records", "fsma204", "epcis",
                                    "effectiveness"}  # fmt: skip
    assert all(ms >= 0 for ms in drill["stages"].values())
    assert drill["total_ms"] > 0
    assert_error(await recall.get(f"/recalls/{drill['drill_id']}"), 404, "recall_not_found")
    # Nothing went out: the outbox never held a message, so no topic got one.
    assert await read_settled(broker.bootstrap_servers, "recall-issued", database_url) == []
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await connection.close()
