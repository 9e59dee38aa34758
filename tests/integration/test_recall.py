"""Recall against a real broker and PostgreSQL: scope by supplier and receiving window,
genealogy at any depth, notices as the contract says them (split when large), lots made from
a recalled lot after the recall, closing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.recall.app import Settings, create_app
from shared.contracts.envelope import Incoming, TopicDecoder
from shared.contracts.events import GoodsReceived, OrderShipped, RecallCustomerNotice
from shared.contracts.topics import TOPICS_BY_NAME
from tests.integration.events import lot, shipment_of
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish, read_settled, read_topic

NOW = datetime.now(UTC)


@pytest_asyncio.fixture
async def recall(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    settings = quick_settings(Settings, database_url, broker, max_shipments_per_notice=3)
    async with running(create_app(settings)) as client:
        yield client


def shipment(
    customer: dict[str, Any], *lots: GoodsReceived, quantity: str = "2.50"
) -> OrderShipped:
    return shipment_of(
        customer, *lots, quantity=quantity, shipped_at=NOW - timedelta(hours=len(lots))
    )


async def until_known(client: httpx.AsyncClient, shipped_lot: GoodsReceived, lines: int) -> None:
    async def known() -> bool:
        response = await client.get(f"/trace/lots/{shipped_lot.lot_id}/forward")
        return response.status_code == 200 and response.json()["totals"]["shipment_lines"] >= lines

    await wait_until(known, timeout=30, what="shipments known")


async def notices_of(broker: TansuBroker, recall_id: str, at_least: int) -> list[Incoming[Any]]:
    decoder = TopicDecoder(TOPICS_BY_NAME["recall-issued"])
    found: list[Incoming[Any]] = []

    async def complete() -> bool:
        found.clear()
        for record in await read_topic(broker.bootstrap_servers, "recall-issued", timeout=10):
            event = decoder.decode(
                value=record.value, headers=record.headers, partition=0, offset=0, key=record.key
            )
            assert isinstance(event, Incoming), event  # every message keeps the contract
            if isinstance(event.data, RecallCustomerNotice) and event.data.recall_id == recall_id:
                found.append(event)
        return len(found) >= at_least

    await wait_until(complete, timeout=30, what=f"{at_least} notices")
    return found


async def issue(client: httpx.AsyncClient, scope: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        "/recalls", json={"reason": "listeria found", "classification": "I", "scope": scope}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def test_notices_keep_the_contract_and_name_each_customer_with_what_they_received(
    recall: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    cheese = lot("CHEESE-1")
    ann = {
        "customer_id": "ANN",
        "name": "Ann's Deli",
        "email": "ann@example.com",
        "address": {"line1": "1 Rue Haute", "city": "Lyon", "country": "FR"},
    }
    bob = {"customer_id": "BOB"}
    await publish(
        broker.bootstrap_servers, cheese, shipment(ann, cheese), shipment(bob, cheese, quantity="4")
    )
    await until_known(recall, cheese, 2)
    recall_id = (await issue(recall, {"lot_ids": [str(cheese.lot_id)]}))["recall_id"]

    notices = {n.data.customer.customer_id: n for n in await notices_of(broker, recall_id, 2)}

    # Exactly one notice each: once the recall says its notices are done and its outbox has
    # published them, the topic up to its end offsets holds no duplicate.
    async def notices_complete() -> bool:
        return bool((await recall.get(f"/recalls/{recall_id}")).json()["notices_complete"])

    await wait_until(notices_complete, timeout=30, what="notices complete")
    settled = await read_settled(broker.bootstrap_servers, "recall-issued", database_url)
    notified = [
        event["data"]["customer"]["customer_id"]
        for event in (json.loads(record.value) for record in settled)
        if event["type"] == "lottrace.recall-customer-notice.v1"
        and event["data"]["recall_id"] == recall_id
    ]
    assert sorted(notified) == ["ANN", "BOB"]
    ann_notice = json.loads(notices["ANN"].data.model_dump_json(exclude_none=True))
    assert ann_notice["customer"] == ann
    assert ann_notice["reason"] == "listeria found"
    assert ann_notice["classification"] == "I"
    assert ann_notice["late"] is False
    assert [(s["lot_code"], s["quantity"]) for s in ann_notice["shipments"]] == [
        ("CHEESE-1", "2.5")
    ]
    assert notices["BOB"].data.customer.name is None
    assert notices["ANN"].subject == recall_id  # keyed and named by the recall
    assert all(n.type == "lottrace.recall-customer-notice.v1" for n in notices.values())


async def test_a_customer_with_very_many_shipments_gets_several_notices(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    flour = lot("FLOUR-1")
    big = {"customer_id": "BAKERY", "name": "Big Bakery"}
    await publish(broker.bootstrap_servers, flour, *(shipment(big, flour) for _ in range(7)))
    await until_known(recall, flour, 7)
    recall_id = (await issue(recall, {"lot_codes": ["FLOUR-1"], "sku": "FLOUR"}))["recall_id"]
    notices = await notices_of(broker, recall_id, 3)
    parts = sorted((n.data.part, n.data.parts, len(n.data.shipments)) for n in notices)
    assert parts == [(1, 3, 3), (2, 3, 3), (3, 3, 1)]
    assert len({s.shipment_id for n in notices for s in n.data.shipments}) == 7


async def test_a_recall_by_supplier_and_window_takes_those_lots_and_what_was_made_of_them(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    old = lot("PEACH-1", supplier="ORCHARD", days_ago=40)
    in_window = lot("PEACH-2", supplier="ORCHARD", days_ago=10)
    other_supplier = lot("PEACH-3", supplier="GROVE", days_ago=10)
    jam = lot("JAM-1", inputs=[in_window], days_ago=5)
    jar_pack = lot("PACK-1", inputs=[jam], days_ago=2)
    await publish(broker.bootstrap_servers, old, in_window, other_supplier, jam, jar_pack)
    await until_known_lot(recall, jar_pack)
    since = (NOW - timedelta(days=20)).date().isoformat()
    accepted = await issue(recall, {"supplier_id": "ORCHARD", "received_from": since})
    assert accepted["affected_lots"] == 3
    view = (await recall.get(f"/recalls/{accepted['recall_id']}")).json()
    affected = {lot_["lot_code"]: lot_["via_lot_id"] for lot_ in view["affected_lots"]}
    assert affected == {
        "PEACH-2": None,
        "JAM-1": str(in_window.lot_id),
        "PACK-1": str(in_window.lot_id),
    }


async def test_a_lot_made_from_a_recalled_lot_after_the_recall_joins_it_with_late_notices(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    milk = lot("MILK-1")
    await publish(broker.bootstrap_servers, milk)
    await until_known_lot(recall, milk)
    recall_id = (await issue(recall, {"lot_ids": [str(milk.lot_id)]}))["recall_id"]
    yogurt = lot("YOGURT-1", inputs=[milk], days_ago=0)  # production that went on regardless
    await publish(broker.bootstrap_servers, yogurt, shipment({"customer_id": "CAFE"}, yogurt))
    [notice] = await notices_of(broker, recall_id, 1)
    assert notice.data.late is True
    assert notice.data.customer.customer_id == "CAFE"
    assert notice.data.shipments[0].lot_code == "YOGURT-1"


async def test_a_recall_closes_once(recall: httpx.AsyncClient, broker: TansuBroker) -> None:
    egg = lot("EGG-1")
    await publish(broker.bootstrap_servers, egg)
    await until_known_lot(recall, egg)
    recall_id = (await issue(recall, {"lot_codes": ["EGG-1"]}))["recall_id"]
    closed = await recall.post(f"/recalls/{recall_id}/close", json={"note": "all stock destroyed"})
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["affected_lots"]) == ("closed", 1)
    again = await recall.post(f"/recalls/{recall_id}/close")
    assert again.status_code == 409
    assert (await recall.get(f"/recalls/{recall_id}")).json()["closed_by"] == "admin"


async def test_the_customers_csv_spells_addresses_in_postal_order_and_defuses_formulas(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    honey = lot("HONEY-1")
    customer = {
        "customer_id": "DELI-9",
        "name": '=HYPERLINK("http://evil")',
        "address": {"line1": "400 Market Ave", "city": "Springfield", "postal_code": "01103"},
    }
    await publish(broker.bootstrap_servers, honey, shipment(customer, honey))
    await until_known(recall, honey, 1)
    recall_id = (await issue(recall, {"lot_codes": ["HONEY-1"]}))["recall_id"]
    answer = await recall.get(f"/recalls/{recall_id}/customers.csv")
    [row] = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["address"] == "400 Market Ave, Springfield, 01103"
    assert row["name"] == '\'=HYPERLINK("http://evil")'
    assert (row["lot_code"], row["quantity"], row["late"]) == ("HONEY-1", "2.5", "no")


async def until_known_lot(client: httpx.AsyncClient, known: GoodsReceived) -> None:
    async def ready() -> bool:
        return (await client.get(f"/trace/lots/{known.lot_id}/backward")).status_code == 200

    await wait_until(ready, timeout=30, what=f"lot {known.lot_code} known")


async def test_an_imported_shipment_fills_missing_contact_details_but_never_replaces_them(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    jam = lot("JAM-1")
    today = {"customer_id": "CARA", "name": "Cara's Shop", "email": "orders@cara.example"}
    years_ago = {
        "customer_id": "CARA",
        "name": "Cara Old Name",
        "email": "old@cara.example",
        "phone": "+33 1 23 45 67 89",
    }
    current = shipment(today, jam)
    history = shipment(years_ago, jam).model_copy(update={"imported": True})
    await publish(broker.bootstrap_servers, jam, current, history)
    await until_known(recall, jam, 2)
    recall_id = (await issue(recall, {"lot_codes": ["JAM-1"]}))["recall_id"]
    answer = await recall.get(f"/recalls/{recall_id}/customers.csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {(r["name"], r["email"], r["phone"]) for r in rows} == {
        ("Cara's Shop", "orders@cara.example", "+33 1 23 45 67 89")
    }
