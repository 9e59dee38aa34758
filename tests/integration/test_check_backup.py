"""`lottrace check`, `backup` and `restore` against the four services' real databases and a
real broker: a state built through the services is consistent; a corrupted projection is
named; an archive restored over it (or into dropped databases) gives the state back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from typer.testing import CliRunner

from lottrace.backup import ArchiveInvalid, PgTools, RestoreRefused, read_manifest, restore
from lottrace.check.audit import CheckOptions, run_check
from lottrace.check.compare import CheckReport, Kind, Verdict
from lottrace.cli import app as cli
from lottrace.infra import TansuBroker, wait_until
from services.fulfillment import app as fulfillment
from services.inventory import app as inventory
from services.recall import app as recall
from services.receiving import app as receiving
from shared.contracts.events import OrderPlaced
from shared.runtime.settings import KafkaSettings
from tests.conftest import PostgresServer
from tests.integration.service_apps import ADMIN_API_KEYS, kafka_env, running
from tests.kafka_helpers import publish

SERVICES = {
    "receiving": receiving,
    "inventory": inventory,
    "fulfillment": fulfillment,
    "recall": recall,
}
# What the tests compare before and after a restore: lots and what the trace is made of.
ROWS = {
    "receiving": "SELECT * FROM lots ORDER BY lot_id",
    "inventory": "SELECT lot_id, location, received, shipped, on_hand FROM stock ORDER BY 1, 2",
    "recall": "SELECT * FROM shipment_lines ORDER BY shipment_id, line_no, lot_id",
}


@pytest_asyncio.fixture
async def databases(postgres_server: PostgresServer) -> AsyncIterator[dict[str, str]]:
    names = {service: await postgres_server.create_database() for service in SERVICES}
    try:
        yield {service: postgres_server.url(name) for service, name in names.items()}
    finally:
        for name in names.values():
            await postgres_server.drop_database(name)


def settings(service: str, url: str, broker: TansuBroker) -> Any:
    extra = {"auto_ship": True} if service == "fulfillment" else {}
    return SERVICES[service].Settings(
        database_url=url,
        kafka=KafkaSettings(**kafka_env(broker)),
        consumer_batch_timeout_ms=20,
        api_keys=ADMIN_API_KEYS,
        **extra,
    )


@asynccontextmanager
async def built_state(
    databases: dict[str, str], broker: TansuBroker
) -> AsyncIterator[dict[str, Any]]:
    """Oranges pressed into juice, juice ordered and shipped, through the four services, which
    keep running until the context ends; yields the juice lot."""
    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for service, url in databases.items():
            app = SERVICES[service].create_app(settings(service, url, broker))
            clients[service] = await stack.enter_async_context(running(app))
        oranges = await receipt(clients["receiving"], sku="ORANGES", quantity="100")
        juice = await receipt(
            clients["receiving"],
            sku="OJ",
            quantity="40",
            inputs=[{"lot_id": oranges["lot_id"], "quantity": "60"}],
        )
        order = OrderPlaced(
            order_id="SO-1",
            customer={"customer_id": "C-1", "name": "Deli"},
            lines=[{"line_no": 1, "sku": "OJ", "quantity": 15}],
        )
        await publish(broker.bootstrap_servers, order)

        async def shipped() -> bool:
            response = await clients["fulfillment"].get("/orders/SO-1")
            return response.status_code == 200 and response.json()["status"] == "shipped"

        await wait_until(shipped, timeout=60, what="SO-1 shipped")
        yield juice


async def receipt(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/receipts", json=body)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def check(databases: dict[str, str], broker: TansuBroker) -> CheckReport:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    return await run_check(CheckOptions(databases, kafka, wait_seconds=30))


async def rows(databases: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for service, query in ROWS.items():
        connection = await asyncpg.connect(databases[service])
        try:
            found[service] = [dict(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()
    return found


async def execute(url: str, statement: str, *args: Any) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


def cli_args(databases: dict[str, str], broker: TansuBroker) -> list[str]:
    return [
        *(f"--{service}-database-url={url}" for service, url in databases.items()),
        f"--bootstrap={broker.bootstrap_servers}",
    ]


async def test_check_is_clean_after_real_work_and_names_a_corrupted_lot(
    databases: dict[str, str], broker: TansuBroker
) -> None:
    async with built_state(databases, broker) as juice:
        clean = await check(databases, broker)
    assert (clean.verdict, clean.differences, clean.lots, clean.shipments) == (
        Verdict.CLEAN,
        (),
        2,
        1,
    )
    assert clean.settled
    said = await asyncio.to_thread(CliRunner().invoke, cli, ["check", *cli_args(databases, broker)])
    assert said.exit_code == 0, said.output
    assert said.stdout.strip() == "consistent: 2 lots, 1 shipment agree across the services"

    await execute(
        databases["inventory"],
        "UPDATE stock SET received = received - 5 WHERE lot_id = $1",
        juice["lot_id"],
    )
    broken = await check(databases, broker)
    assert broken.verdict is Verdict.DIFFERENT
    assert {(d.kind, d.key) for d in broken.differences} == {
        (Kind.RECEIVED_QUANTITY, juice["lot_id"]),
        (Kind.LOT_BALANCE, juice["lot_id"]),
    }

    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["check", "--json", *cli_args(databases, broker)]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert {d["key"] for d in document["differences"]} == {juice["lot_id"]}


async def test_restore_brings_back_the_backed_up_state_and_refuses_to_overwrite_data(
    databases: dict[str, str], broker: TansuBroker, tmp_path: Path
) -> None:
    async with built_state(databases, broker):
        assert (await check(databases, broker)).verdict is Verdict.CLEAN
    before = await rows(databases)
    archive = tmp_path / "lottrace.tar"
    tools = PgTools.choose(None)
    made = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["backup", str(archive), *(f"--{s}-database-url={u}" for s, u in databases.items())],
    )
    assert made.exit_code == 0, made.output
    manifest = read_manifest(archive)
    assert {d.service for d in manifest.databases} == set(SERVICES)
    assert "inventory/0001_stock" in manifest.databases[1].migrations

    await execute(databases["receiving"], "DELETE FROM receipt_inputs")
    with pytest.raises(RestoreRefused, match="receiving"):
        await restore(archive, databases, tools)
    await restore(archive, databases, tools, force=True)
    assert await rows(databases) == before
    assert (await check(databases, broker)).verdict is Verdict.CLEAN

    for url in databases.values():
        await execute(
            url.rsplit("/", 1)[0] + "/postgres", f'DROP DATABASE "{url.rsplit("/", 1)[1]}"'
        )
    await restore(archive, databases, tools)
    assert await rows(databases) == before


async def test_restore_refuses_what_is_not_a_lottrace_backup_with_a_message(
    databases: dict[str, str], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(ArchiveInvalid, match="not a lottrace backup"):
        await restore(junk, databases, PgTools.choose(None))
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["restore", str(junk), *(f"--{s}-database-url={u}" for s, u in databases.items())],
    )
    assert result.exit_code == 2
    assert "not a lottrace backup" in result.output
    assert "Traceback" not in result.output
