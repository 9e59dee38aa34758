"""`lottrace replay`: the recall projection rebuilt from its topics beside the running service,
then switched to while the service is stopped, against a real broker and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from lottrace.cli import app as cli
from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import replay_plan as inventory_plan
from services.recall.app import Settings, create_app, replay_plan
from shared.contracts.envelope import Incoming, TopicDecoder
from shared.contracts.events import GoodsReceived, OrderShipped, RecallCustomerNotice
from shared.contracts.topics import TOPICS_BY_NAME
from shared.runtime.replay import REPLACED_PREFIX, Replay, ReplayRefused
from shared.runtime.settings import KafkaSettings
from tests.integration.events import lot, moved, shipment_of
from tests.integration.service_apps import quick_settings, running
from tests.kafka_helpers import publish, read_topic

NOW = datetime.now(UTC)


def settings_for(database_url: str, broker: TansuBroker) -> Settings:
    return quick_settings(Settings, database_url, broker)


def shipment(customer_id: str, shipped: GoodsReceived) -> OrderShipped:
    customer = {"customer_id": customer_id, "name": customer_id.title()}
    return shipment_of(customer, shipped, quantity="3", shipped_at=NOW)


async def notices(broker: TansuBroker, recall_id: str) -> list[Incoming[Any]]:
    decoder = TopicDecoder(TOPICS_BY_NAME["recall-issued"])
    found = []
    for record in await read_topic(broker.bootstrap_servers, "recall-issued", timeout=10):
        event = decoder.decode(
            value=record.value, headers=record.headers, partition=0, offset=0, key=record.key
        )
        assert isinstance(event, Incoming), event
        if isinstance(event.data, RecallCustomerNotice) and event.data.recall_id == recall_id:
            found.append(event)
    return found


async def forward_customers(client: httpx.AsyncClient, shipped: GoodsReceived) -> set[str]:
    response = await client.get(f"/trace/lots/{shipped.lot_id}/forward")
    if response.status_code != 200:
        return set()
    return {customer["customer_id"] for customer in response.json()["customers"]}


async def test_a_rebuilt_recall_projection_repairs_the_live_one_and_keeps_its_recalls(
    database_url: str, broker: TansuBroker
) -> None:
    settings = settings_for(database_url, broker)
    oranges = lot("ORANGES-1")
    juice = lot("JUICE-1", inputs=[oranges])
    await publish(
        broker.bootstrap_servers,
        oranges,
        juice,
        shipment("ANN", juice),
        shipment("BOB", juice),
        shipment("CAROL", oranges),
        moved(juice),
    )
    async with running(create_app(settings)) as recall:
        await wait_until(
            lambda: _has(recall, juice, {"ANN", "BOB"}), timeout=30, what="shipments known"
        )
        accepted = await recall.post(
            "/recalls", json={"reason": "mould", "scope": {"lot_ids": [str(juice.lot_id)]}}
        )
        recall_id = accepted.json()["recall_id"]

        async def notices_out() -> bool:
            return bool((await recall.get(f"/recalls/{recall_id}")).json()["notices_complete"])

        await wait_until(notices_out, timeout=30, what="the recall's notices sent")
        # A projection bug loses rows: the replay is how it gets them back.
        connection = await asyncpg.connect(database_url)
        await connection.execute("DELETE FROM shipment_lines WHERE customer_id = 'BOB'")
        await connection.close()
        assert await forward_customers(recall, juice) == {"ANN"}

        built = await Replay(replay_plan(settings), database_url, settings.kafka).build()
        assert built.applied == 6, built
        assert not built.switched
        with pytest.raises(ReplayRefused, match="stop recall before switching"):
            await Replay(replay_plan(settings), database_url, settings.kafka).switch()

    # While recall is down, the juice reaches another customer: a late shipment nobody saw yet,
    # which recall applies, with its notice, when it starts again on the rebuilt projection.
    await publish(broker.bootstrap_servers, shipment("DAN", juice))
    switched = await Replay(replay_plan(settings), database_url, settings.kafka).switch()
    assert switched.switched
    assert switched.table_rows["recalls"] == (1, 1)
    assert switched.replaced_schema is not None
    assert switched.replaced_schema.startswith(REPLACED_PREFIX)

    async with running(create_app(settings)) as recall:

        async def dan_applied() -> bool:
            return await forward_customers(recall, juice) == {"ANN", "BOB", "DAN"}

        # DAN's shipment waits on the topic until recall consumes it after the switch.
        await wait_until(dan_applied, timeout=30, what="DAN's late shipment applied")
        assert await forward_customers(recall, oranges) == {"CAROL", "ANN", "BOB", "DAN"}
        view = (await recall.get(f"/recalls/{recall_id}")).json()
        assert view["status"] == "open"
        assert [lot_["lot_code"] for lot_ in view["affected_lots"]] == ["JUICE-1"]
        # Kept by recall longer than its topic, and rebuilt from it too: there once.
        moves = (await recall.get(f"/trace/lots/{juice.lot_id}/movements")).json()
        assert [move["movement_id"] for move in moves["movements"]] == ["MV-JUICE-1"]

        async def dan_notified() -> bool:
            return any(
                n.data.customer.customer_id == "DAN" for n in await notices(broker, recall_id)
            )

        await wait_until(dan_notified, timeout=30, what="the late notice for DAN")
        sent = await notices(broker, recall_id)
        # Once each: the rebuild re-applied ANN's and BOB's shipments without notifying again.
        assert sorted((n.data.customer.customer_id, n.data.late) for n in sent) == [
            ("ANN", False),
            ("BOB", False),
            ("DAN", True),
        ]


async def _has(client: httpx.AsyncClient, shipped: GoodsReceived, customers: set[str]) -> bool:
    return await forward_customers(client, shipped) == customers


def test_a_service_whose_state_the_topics_cannot_rebuild_is_refused_with_the_reason() -> None:
    with pytest.raises(ReplayRefused, match="holds, releases and counts"):
        Replay(inventory_plan(), "postgresql://unused", KafkaSettings())

    result = CliRunner().invoke(cli, ["replay", "receiving"])
    assert result.exit_code == 1
    assert "receiving consumes no topic" in result.output
