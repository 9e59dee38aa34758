"""Recall against a real broker and PostgreSQL: once a recall is closed, a shipment of its lot
that becomes known afterwards sends no late notice (an open recall's does)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.recall.app import Settings, create_app
from shared.contracts.events import GoodsReceived, OrderShipped
from tests.integration.events import applied, event_id, lot, shipment_of
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import headers_of, publish, read_settled, read_topic

NOTICE = "lottrace.recall-customer-notice.v1"


@pytest_asyncio.fixture
async def recall(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(quick_settings(Settings, database_url, broker))) as client:
        yield client


def shipped(customer_id: str, received: GoodsReceived) -> OrderShipped:
    return shipment_of({"customer_id": customer_id}, received, quantity=2)


def notices(records: list[Any]) -> list[dict[str, Any]]:
    return [
        json.loads(record.value)["data"]
        for record in records
        if headers_of(record).get("ce_type") == NOTICE
    ]


async def issue(client: httpx.AsyncClient, received: GoodsReceived) -> str:
    response = await client.post(
        "/recalls", json={"reason": "glass found", "scope": {"lot_ids": [str(received.lot_id)]}}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["recall_id"])


async def test_a_closed_recall_sends_no_late_notice_while_an_open_one_does(
    recall: httpx.AsyncClient, broker: TansuBroker, database_url: str
) -> None:
    bootstrap = broker.bootstrap_servers
    closed_lot, open_lot = lot("SALAD-1"), lot("SALAD-2")
    await publish(
        bootstrap, closed_lot, open_lot, shipped("ANN", closed_lot), shipped("BOB", open_lot)
    )

    async def both_shipped() -> bool:
        traces = [
            (await recall.get(f"/trace/lots/{known.lot_id}/forward")).json()
            for known in (closed_lot, open_lot)
        ]
        return all(trace.get("totals", {}).get("shipment_lines") == 1 for trace in traces)

    await wait_until(both_shipped, timeout=30, what="shipments known")
    to_close, open_one = await issue(recall, closed_lot), await issue(recall, open_lot)

    async def first_notices_out() -> bool:
        records = await read_topic(bootstrap, "recall-issued", at_least=0, timeout=10)
        return len(notices(records)) == 2

    await wait_until(first_notices_out, timeout=30, what="the first notices")
    closed = await recall.post(
        f"/recalls/{to_close}/close",
        json={"note": "all destroyed", "override_reason": "destroyed on site, no returns"},
    )
    assert closed.status_code == 200, closed.text

    # Shipments that were in flight, of both lots, become known now.
    late = await publish(bootstrap, shipped("CAROL", closed_lot), shipped("DAN", open_lot))
    await wait_until(
        lambda: applied(database_url, [event_id(message) for message in late]),
        timeout=30,
        what="late shipments applied",
    )
    sent = notices(await read_settled(bootstrap, "recall-issued", database_url))
    view = (await recall.get(f"/recalls/{to_close}")).json()

    per_recall = Counter((n["recall_id"], n["customer"]["customer_id"], n["late"]) for n in sent)
    assert per_recall == {
        (to_close, "ANN", False): 1,
        (open_one, "BOB", False): 1,
        (open_one, "DAN", True): 1,  # the open recall still reaches a late shipment
    }
    assert (view["status"], view["late_notices"]) == ("closed", 0)
