"""Genealogy has no depth limit, in recall as in inventory: a recall of the first lot of a
chain deeper than any fixed limit reaches the last lot in both services, so no customer of a
lot that inventory blocks goes without a notice."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import Settings as InventorySettings
from services.inventory.app import create_app as create_inventory
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as create_recall
from shared.contracts.events import GoodsReceived
from tests.conftest import PostgresServer
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish

DEPTH = 60  # deeper than the 50 levels recall used to stop at

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]


@pytest_asyncio.fixture
async def recall_and_inventory(
    postgres_server: PostgresServer, broker: TansuBroker
) -> AsyncIterator[Clients]:
    names = [await postgres_server.create_database() for _ in range(2)]
    recall = create_recall(quick_settings(RecallSettings, postgres_server.url(names[0]), broker))
    inventory = create_inventory(
        quick_settings(InventorySettings, postgres_server.url(names[1]), broker)
    )
    try:
        async with running(recall) as recall_client, running(inventory) as inventory_client:
            yield recall_client, inventory_client
    finally:
        for name in names:
            await postgres_server.drop_database(name)


def chain(depth: int) -> list[GoodsReceived]:
    """Lot 0, then `depth - 1` lots each made from the one before."""
    lots: list[GoodsReceived] = []
    start = datetime.now(UTC) - timedelta(days=depth)
    for level in range(depth):
        inputs = [lots[-1]] if lots else []
        lots.append(
            GoodsReceived(
                receipt_id=f"RC-DEEP-{level}",
                lot_id=uuid.uuid4(),
                lot_code=f"DEEP-{level:03d}",
                sku=f"STAGE{level}",
                quantity=10,
                received_at=start + timedelta(days=level),
                inputs=[
                    {"lot_id": i.lot_id, "lot_code": i.lot_code, "sku": i.sku, "quantity": 1}
                    for i in inputs
                ],
            )
        )
    return lots


async def test_a_recall_reaches_the_end_of_a_deep_chain_in_recall_and_in_inventory(
    recall_and_inventory: Clients, broker: TansuBroker
) -> None:
    recall, inventory = recall_and_inventory
    lots = chain(DEPTH)
    deepest = lots[-1]
    await publish(broker.bootstrap_servers, *lots)

    async def both_know_the_deepest() -> bool:
        traced = await recall.get(f"/trace/lots/{lots[0].lot_id}/forward")
        in_inventory = await inventory.get(f"/lots/{deepest.lot_id}")
        return (
            traced.status_code == 200
            and len(traced.json()["made_into"]) == DEPTH - 1
            and in_inventory.status_code == 200
        )

    await wait_until(both_know_the_deepest, timeout=60, what="the whole chain known")
    response = await recall.post(
        "/recalls",
        json={
            "reason": "glass",
            "classification": "I",
            "scope": {"lot_ids": [str(lots[0].lot_id)]},
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["affected_lots"] == DEPTH

    view = (await recall.get(f"/recalls/{response.json()['recall_id']}")).json()
    affected = {lot["lot_id"]: lot for lot in view["affected_lots"]}
    assert affected[str(deepest.lot_id)]["via_lot_id"] == str(lots[0].lot_id)

    async def all_recalled_in_inventory() -> bool:
        statuses = [(await inventory.get(f"/lots/{lot.lot_id}")).json()["status"] for lot in lots]
        return statuses == ["recalled"] * DEPTH

    await wait_until(all_recalled_in_inventory, timeout=60, what="every lot recalled in inventory")
