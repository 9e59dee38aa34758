"""Inventory when an order's events arrive out of order, against a real broker and PostgreSQL.

Inventory reads `order-placed` and `order-shipped` from two topics, so nothing orders one
before the other: a projection rebuilt from offset 0, a consumer that lagged on one topic, or
an allocation made outside inventory can put an order's shipment first. The shipped units
must then count when the order arrives, never be reserved a second time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from lottrace.infra import TansuBroker, wait_until
from shared.contracts.events import GoodsReceived
from tests.integration.events import applied, event_id
from tests.integration.service_apps import running
from tests.integration.service_apps import until_served as _until
from tests.integration.test_inventory import inventory_app, order, received, shipped
from tests.kafka_helpers import publish


@pytest_asyncio.fixture
async def inventory(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    async with running(inventory_app(database_url, broker)) as client:
        yield client


async def shipped_before_ordered(
    inventory: httpx.AsyncClient,
    database_url: str,
    bootstrap: str,
    *,
    order_id: str,
    shipped_first: int,
    ordered: int,
) -> GoodsReceived:
    """A lot of 10; `shipped_first` units of it shipped on `order_id`, applied by inventory,
    and only then the order of `ordered` units placed."""
    lot = received(f"RACE-{uuid.uuid4().hex[:6]}", 10, days=30)
    await publish(bootstrap, lot)
    await _until(inventory, f"/lots/{lot.lot_id}", lambda _: True)
    [shipment] = await publish(bootstrap, shipped(order_id, lot.sku, lot.lot_id, shipped_first))

    async def shipment_applied() -> bool:
        return await applied(database_url, [event_id(shipment)])

    await wait_until(shipment_applied, timeout=30, what="the early shipment applied")
    await publish(bootstrap, order(order_id, lot.sku, ordered))
    return lot


@pytest.mark.parametrize(
    ("shipped_first", "ordered", "reserved", "lot_after"),
    [
        pytest.param(3, 3, "0", ("7", "0"), id="all shipped first: no reservation, order closed"),
        pytest.param(2, 5, "3", ("8", "3"), id="part shipped first: only the rest reserved"),
    ],
)
async def test_an_order_whose_shipment_came_first_reserves_only_what_is_left(
    inventory: httpx.AsyncClient,
    database_url: str,
    broker: TansuBroker,
    shipped_first: int,
    ordered: int,
    reserved: str,
    lot_after: tuple[str, str],
) -> None:
    order_id = f"SO-{shipped_first}-OF-{ordered}"
    lot = await shipped_before_ordered(
        inventory,
        database_url,
        broker.bootstrap_servers,
        order_id=order_id,
        shipped_first=shipped_first,
        ordered=ordered,
    )

    placed = await _until(
        inventory, f"/orders/{order_id}", lambda body: body["lines"][0]["reserved"] == reserved
    )
    [line] = placed["lines"]
    assert (line["ordered"], line["shipped"], line["reserved"]) == (
        str(ordered),
        str(shipped_first),
        reserved,
    )
    assert [r["quantity"] for r in placed["reservations"]] == (
        [] if reserved == "0" else [reserved]
    )
    assert (placed["status"] == "open") is (shipped_first < ordered)
    lot_view = await _until(inventory, f"/lots/{lot.lot_id}", lambda _: True)
    assert (lot_view["on_hand"], lot_view["reserved"]) == lot_after
