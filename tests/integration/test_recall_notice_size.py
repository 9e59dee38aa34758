"""Notices fit the message limit whatever the field lengths: a customer with thousands of
shipments at the contract's longest values gets several notices, each under 900 KB, naming
every shipment once; and a notice that cannot fit at all is dead-lettered with its reason
without holding up the other customers of the recall."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from lottrace.infra import TansuBroker, wait_until
from services.recall.app import Settings, create_app
from shared.contracts.envelope import Incoming, TopicDecoder
from shared.contracts.events import GoodsReceived, OrderShipped, RecallCustomerNotice
from shared.contracts.topics import TOPICS_BY_NAME, dead_letter_topic
from shared.runtime.database import MAX_MESSAGE_BYTES
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish, read_topic

NOW = datetime.now(UTC)
LONG_SKU = "S" * 64
LONG_LOT_CODE = "L" * 64


@pytest_asyncio.fixture
async def app_and_client(
    database_url: str, broker: TansuBroker
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(quick_settings(Settings, database_url, broker))
    async with running(app) as client:
        yield app, client


def long_lot() -> GoodsReceived:
    return GoodsReceived(
        receipt_id="R" * 100,
        lot_id=uuid.uuid4(),
        lot_code=LONG_LOT_CODE,
        sku=LONG_SKU,
        quantity=100_000,
        received_at=NOW - timedelta(days=3),
    )


def customer(customer_id: str, *, name_length: int = 200) -> dict[str, Any]:
    return {"customer_id": customer_id, "name": "N" * name_length}


def shipped(who: dict[str, Any], received: GoodsReceived, number: int) -> OrderShipped:
    """One shipment line with every identifier at its longest."""
    return OrderShipped(
        shipment_id=f"{number:08d}".rjust(100, "H"),
        order_id=f"{number:08d}".rjust(100, "O"),
        customer=who,
        shipped_at=NOW - timedelta(hours=1),
        lines=[
            {
                "line_no": 1,
                "sku": received.sku,
                "lot_id": received.lot_id,
                "lot_code": received.lot_code,
                "quantity": "1.5",
            }
        ],
    )


async def recall_lot(client: httpx.AsyncClient, received: GoodsReceived, lines: int) -> str:
    async def known() -> bool:
        response = await client.get(f"/trace/lots/{received.lot_id}/forward")
        return response.status_code == 200 and response.json()["totals"]["shipment_lines"] >= lines

    await wait_until(known, timeout=60, what=f"{lines} shipment lines known")
    response = await client.post(
        "/recalls",
        json={
            "reason": "listeria found",
            "classification": "I",
            "scope": {"lot_ids": [str(received.lot_id)]},
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["recall_id"])


async def notices_complete(client: httpx.AsyncClient, recall_id: str) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def complete() -> bool:
        view.update((await client.get(f"/recalls/{recall_id}")).json())
        return bool(view["notices_complete"])

    await wait_until(complete, timeout=60, what="every notice written")
    return view


def message_size(record: ConsumerRecord[Any, Any]) -> int:
    headers = sum(len(name.encode()) + len(value) for name, value in record.headers)
    return len(record.key or b"") + len(record.value) + headers


async def notices_written(database_url: str, recall_id: str) -> int:
    """How many notice messages the recall service logged as written for the recall."""
    connection = await asyncpg.connect(database_url)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM recall_notices WHERE recall_id = $1", recall_id
        )
    finally:
        await connection.close()
    return int(count)


async def notices_on_topic(
    broker: TansuBroker, database_url: str, recall_id: str
) -> list[tuple[RecallCustomerNotice, int]]:
    """The recall's notices on `recall-issued`, each with its size in bytes, once every notice
    the service wrote is there (after the recall's own `recall-issued`)."""
    decoder = TopicDecoder(TOPICS_BY_NAME["recall-issued"])
    written = await notices_written(database_url, recall_id)
    records = await read_topic(broker.bootstrap_servers, "recall-issued", at_least=written + 1)
    found = []
    for record in records:
        event = decoder.decode(
            value=record.value, headers=record.headers, partition=0, offset=0, key=record.key
        )
        assert isinstance(event, Incoming), event
        if isinstance(event.data, RecallCustomerNotice) and event.data.recall_id == recall_id:
            found.append((event.data, message_size(record)))
    return found


async def test_a_customer_with_2500_shipments_at_the_longest_values_gets_notices_under_900kb(
    app_and_client: tuple[Any, httpx.AsyncClient], broker: TansuBroker, database_url: str
) -> None:
    _, client = app_and_client
    received = long_lot()
    big = customer("C" * 100)
    others = [customer("ANN"), customer("ZED")]
    shipments = [shipped(big, received, n) for n in range(2500)]
    shipments += [shipped(who, received, 10_000 + n) for n, who in enumerate(others)]
    await publish(broker.bootstrap_servers, received, *shipments)

    recall_id = await recall_lot(client, received, len(shipments))
    view = await notices_complete(client, recall_id)

    assert view["notified_customers"] == 3
    assert view["waiting_customers"] == []
    notices = await notices_on_topic(broker, database_url, recall_id)
    assert all(size <= MAX_MESSAGE_BYTES for _, size in notices), [s for _, s in notices]
    of_big = [notice for notice, _ in notices if notice.customer.customer_id == big["customer_id"]]
    assert len(of_big) >= 2  # about 700 bytes a shipment: 2,500 cannot fit in one
    assert sorted((n.part, n.parts) for n in of_big) == [
        (part, len(of_big)) for part in range(1, len(of_big) + 1)
    ]
    named = Counter(s.shipment_id for notice in of_big for s in notice.shipments)
    assert named == Counter(s.shipment_id for s in shipments[:2500])  # each exactly once
    per_customer = Counter(notice.customer.customer_id for notice, _ in notices)
    assert per_customer == {big["customer_id"]: len(of_big), "ANN": 1, "ZED": 1}


async def test_a_notice_that_cannot_fit_is_dead_lettered_and_the_others_still_go_out(
    app_and_client: tuple[Any, httpx.AsyncClient], broker: TansuBroker, database_url: str
) -> None:
    app, client = app_and_client
    # The contract's lengths cannot make one shipment outgrow a real limit (settings refuse
    # one under 10,000 bytes): lower the notifier's limit below that, to where one customer's
    # long name alone leaves no room for a shipment while a short one still fits.
    app.state.recalls.max_message_bytes = 2_600
    received = long_lot()
    long_named = customer("LONG", name_length=200) | {"email": "e" * 300 + "@x.example"}
    plain = customer("PLAIN", name_length=4)
    await publish(
        broker.bootstrap_servers,
        received,
        shipped(long_named, received, 1),
        shipped(plain, received, 2),
    )

    dead_lettered_before = undeliverable_count()
    recall_id = await recall_lot(client, received, 2)
    view = await notices_complete(client, recall_id)

    assert view["notified_customers"] == 1
    [waiting] = view["waiting_customers"]
    assert waiting["customer_id"] == "LONG"
    assert "exceeds the 2600-byte message limit" in waiting["reason"]
    notices = await notices_on_topic(broker, database_url, recall_id)
    assert [notice.customer.customer_id for notice, _ in notices] == ["PLAIN"]
    [letter] = await read_topic(broker.bootstrap_servers, dead_letter_topic("recall-issued"))
    headers = dict(letter.headers)
    assert headers["error_type"] == b"notice_too_large"
    assert json.loads(letter.value) | {"reason": ""} == {
        "recall_id": recall_id,
        "customer_id": "LONG",
        "late": False,
        "shipments": 1,
        "reason": "",
    }
    assert undeliverable_count() == dead_lettered_before + 1


def undeliverable_count() -> float:
    return REGISTRY.get_sample_value("lottrace_recall_notices_undeliverable_total") or 0.0
