"""Two inventory replicas over one database, moving one lot between locations by HTTP while
they allocate it to orders from the topic: no stock row ever goes negative or below what is
reserved from it, and not a unit is created or lost."""

from __future__ import annotations

import asyncio
import random
import uuid
from contextlib import AsyncExitStack
from decimal import Decimal

import asyncpg
import httpx

from lottrace.infra import TansuBroker
from tests.integration.service_apps import running
from tests.integration.service_apps import until_served as _until
from tests.integration.test_inventory import inventory_app, latest_allocations, order, received
from tests.kafka_helpers import publish

PLACES = ("MAIN", "BAY-1", "BAY-2")


async def shuffle(client: httpx.AsyncClient, lot: uuid.UUID, seed: int) -> list[int]:
    """Twenty random moves of the lot by one replica; the statuses it answered."""
    rng = random.Random(seed)
    statuses = []
    for _ in range(20):
        source, target = rng.sample(PLACES, 2)
        move = {"lot_id": str(lot), "from": source, "to": target, "quantity": rng.randint(1, 12)}
        statuses.append((await client.post("/moves", json=move)).status_code)
    return statuses


async def test_two_replicas_moving_and_allocating_one_lot_never_go_negative(
    database_url: str, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    lot = uuid.uuid4()
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(running(inventory_app(database_url, broker)))
            for _ in range(2)
        ]
        await publish(bootstrap, received("KALE", 30, days=30, lot_id=lot))
        await _until(replicas[0], f"/lots/{lot}", lambda body: body["on_hand"] == "30")
        orders = [order(f"SO-K{n}", "KALE", 2) for n in range(10)]
        moved, _ = await asyncio.gather(
            asyncio.gather(*(shuffle(client, lot, n) for n, client in enumerate(replicas))),
            publish(bootstrap, *orders),
        )
        allocations = await latest_allocations(bootstrap, orders=10)

    assert {status for statuses in moved for status in statuses} <= {201, 409}
    assert 201 in {status for statuses in moved for status in statuses}
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT location, on_hand, reserved FROM stock")
    finally:
        await connection.close()
    assert all(row["on_hand"] >= row["reserved"] >= 0 for row in rows), rows
    assert sum(row["on_hand"] for row in rows) == 30
    reserved = sum(
        Decimal(a["quantity"]) for event in allocations.values() for a in event["allocations"]
    )
    assert sum(row["reserved"] for row in rows) == reserved == 20
