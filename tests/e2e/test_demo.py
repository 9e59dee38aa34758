"""`make demo` and the `lottrace` commands against all four services, a real broker and a
real PostgreSQL: the seed story ends with exactly the right customers notified and the files
written; it can be told twice on one platform; the trace, recall, lots and dead-letter
commands answer from the running platform."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from rich.console import Console
from typer.testing import CliRunner, Result

from lottrace.cli import app
from lottrace.client import REPLAYED_FROM_HEADER, Connection, ServiceUrls, kafka_settings
from lottrace.demo import DemoOutcome, DemoSettings, run_demo
from lottrace.devstack import Platform
from lottrace.infra import wait_until
from shared.contracts.envelope import encode
from shared.contracts.events import OrderPlaced
from shared.runtime.consumer import DLQ_HEADERS
from tests.e2e.conftest import Clients
from tests.kafka_helpers import headers_of, produce, read_settled, read_topic

# Who receives the pressed juice lot when the story runs on an empty platform (FEFO):
# Green Basket 24 of its 30, Harbor Café all 24, Hilltop School 12 of its 30.
RECEIVED_THE_PRESSED_LOT = {"CUST-GREEN-BASKET", "CUST-HARBOR-CAFE", "CUST-HILLTOP-SCHOOL"}


async def tell_the_story(platform: Platform, output_dir: Path) -> tuple[DemoOutcome, str]:
    transcript = io.StringIO()
    settings = DemoSettings(
        connection=Connection(
            urls=ServiceUrls.from_mapping(platform.urls()), api_key=platform.admin_key
        ),
        kafka=kafka_settings(platform.bootstrap_servers),
        output_dir=output_dir,
        wait_seconds=60,
    )
    outcome = await run_demo(settings, Console(file=transcript, width=160))
    return outcome, transcript.getvalue()


@pytest_asyncio.fixture(scope="module")
async def story(
    platform: Platform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[DemoOutcome, str]]:
    yield await tell_the_story(platform, tmp_path_factory.mktemp("demo-output"))


async def cli(platform: Platform, *args: str) -> Result:
    """Run `lottrace ARGS` against the platform, in a thread: the command runs its own loop."""
    urls = platform.urls()
    options = {
        "trace": ["--receiving-url", urls["receiving"], "--recall-url", urls["recall"]],
        "recall": ["--recall-url", urls["recall"]],
        "lots": ["--inventory-url", urls["inventory"]],
        "dlq": ["--bootstrap", platform.bootstrap_servers],
    }[args[0]]
    key = [] if args[0] == "dlq" else ["--api-key", platform.admin_key]
    return await asyncio.to_thread(
        CliRunner().invoke, app, [*args, *options, *key], env={"COLUMNS": "200"}
    )


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---------------------------------------------------------------------- the story


async def test_the_recall_notifies_exactly_the_customers_who_received_the_complained_about_lot(
    story: tuple[DemoOutcome, str], clients: Clients
) -> None:
    outcome, transcript = story

    assert outcome.recalled_lot_code == outcome.lots["pressed"].lot_code
    assert outcome.received_recalled_lot == RECEIVED_THE_PRESSED_LOT
    assert outcome.affected_customers == RECEIVED_THE_PRESSED_LOT
    assert outcome.notified_customers == 3
    assert outcome.complainant == "CUST-HARBOR-CAFE"
    assert "✓ 3 customers notified" in transcript

    # What a notification service reads: the summary, then one notice per customer, once
    # each: read when the recall's notices are done and its outbox has published them all.
    async def notices_complete() -> bool:
        view = (await clients.recall.get(f"/recalls/{outcome.recall_id}")).json()
        return bool(view["notices_complete"])

    await wait_until(notices_complete, timeout=30, what="the recall's customer notices sent")
    notified: list[str] = []
    recall_database = clients.platform.database_urls["recall"]
    for record in await read_settled(clients.bootstrap, "recall-issued", recall_database):
        event = json.loads(record.value)
        if (
            event["type"] == "lottrace.recall-customer-notice.v1"
            and event["data"]["recall_id"] == outcome.recall_id
        ):
            notified.append(event["data"]["customer"]["customer_id"])
    assert sorted(notified) == sorted(RECEIVED_THE_PRESSED_LOT)


async def test_the_story_writes_the_genealogy_picture_and_the_customers_csv(
    story: tuple[DemoOutcome, str],
) -> None:
    outcome, _ = story

    chart = outcome.genealogy_file.read_text(encoding="utf-8")
    assert outcome.genealogy_file.name == f"genealogy-{outcome.recalled_lot_code}.mmd"
    assert chart.startswith("flowchart LR")
    assert outcome.lots["oranges"].lot_code in chart
    assert f"{outcome.recalled_lot_code}<br/>OJ-1L<br/>3 customers" in chart
    assert "-->|120 KG|" in chart
    assert "class L" in chart
    assert "traced" in chart

    rows = list(csv.DictReader(io.StringIO(outcome.customers_csv.read_text(encoding="utf-8"))))
    assert {row["customer_id"] for row in rows} == RECEIVED_THE_PRESSED_LOT
    assert {row["lot_code"] for row in rows} == {outcome.recalled_lot_code}
    assert sum(int(row["quantity"]) for row in rows) == 60


async def test_the_story_can_be_told_again_on_the_same_platform(
    story: tuple[DemoOutcome, str], platform: Platform, tmp_path: Path
) -> None:
    first, _ = story

    second, transcript = await tell_the_story(platform, tmp_path)

    assert second.run_id != first.run_id
    assert second.recall_id != first.recall_id
    assert second.recalled_lot_code != first.recalled_lot_code
    assert second.affected_customers == second.received_recalled_lot
    assert second.notified_customers == len(second.received_recalled_lot) > 0
    assert "from earlier runs are in stock" in transcript
    assert second.genealogy_file.exists()
    assert second.customers_csv.exists()


# ---------------------------------------------------------------------- the commands


async def test_trace_shows_where_the_lot_came_from_and_who_received_it(
    story: tuple[DemoOutcome, str], platform: Platform
) -> None:
    outcome, _ = story
    code = outcome.recalled_lot_code

    document = as_json(await cli(platform, "trace", code, "--format", "json"))
    assert document["lot"]["lot_code"] == code
    assert [lot["lot_code"] for lot in document["backward"]["inputs"]] == [
        outcome.lots["oranges"].lot_code
    ]
    assert document["backward"]["inputs"][0]["supplier_id"] == "FARM-SOL"
    assert {c["customer_id"] for c in document["forward"]["customers"]} == (
        RECEIVED_THE_PRESSED_LOT
    )

    table = await cli(platform, "trace", code)
    assert table.exit_code == 0, table.output
    for expected in (code, outcome.lots["oranges"].lot_code, "Finca del Sol", "Harbor Café"):
        assert expected in table.stdout

    mermaid = await cli(platform, "trace", code, "--sku", "OJ-1L", "--format", "mermaid")
    assert mermaid.exit_code == 0, mermaid.output
    assert mermaid.stdout == outcome.genealogy_file.read_text(encoding="utf-8")


async def test_trace_asks_for_the_sku_when_products_share_a_lot_code(
    platform: Platform, clients: Clients
) -> None:
    code = f"SHARED-{uuid.uuid4().hex[:6].upper()}"
    for sku in ("DEMO-APPLE-1L", "DEMO-PEAR-1L"):
        response = await clients.receiving.post(
            "/receipts", json={"sku": sku, "quantity": "5", "lot_code": code}
        )
        assert response.status_code == 201, response.text

    ambiguous = await cli(platform, "trace", code)
    missing = await cli(platform, "trace", "NO-SUCH-LOT-CODE")

    assert ambiguous.exit_code == 2
    assert "DEMO-APPLE-1L" in ambiguous.stderr
    assert "DEMO-PEAR-1L" in ambiguous.stderr
    assert "--sku" in ambiguous.stderr
    assert missing.exit_code == 1
    assert "receiving knows no lot NO-SUCH-LOT-CODE" in missing.stderr


async def test_recall_status_and_customers_answer_from_the_recall_service(
    story: tuple[DemoOutcome, str], platform: Platform, tmp_path: Path
) -> None:
    outcome, _ = story

    status = as_json(await cli(platform, "recall", "status", outcome.recall_id, "-f", "json"))
    customers = as_json(await cli(platform, "recall", "customers", outcome.recall_id, "-f", "json"))
    written = await cli(
        platform, "recall", "customers", outcome.recall_id, "--csv", str(tmp_path / "c.csv")
    )
    table = await cli(platform, "recall", "customers", outcome.recall_id)

    assert status["notices_complete"] is True
    assert status["affected_customer_count"] == 3
    assert [lot["lot_code"] for lot in status["affected_lots"]] == [outcome.recalled_lot_code]
    assert {customer["customer_id"] for customer in customers} == RECEIVED_THE_PRESSED_LOT
    assert written.exit_code == 0, written.output
    assert (tmp_path / "c.csv").read_text() == outcome.customers_csv.read_text()
    assert "Hilltop School District" in table.stdout


async def test_recall_issue_recalls_a_lot_by_code_and_status_waits_for_its_notices(
    story: tuple[DemoOutcome, str], platform: Platform
) -> None:
    outcome, _ = story
    scanned = outcome.lots["scanned"]  # Corner Deli 18 and Green Basket 6 in the first story

    accepted = as_json(
        await cli(
            platform,
            "recall", "issue", "--lot-code", scanned.lot_code, "--sku", "OJ-1L",
            "--reason", "Co-packer reports a seal defect", "--classification", "III", "--yes",
            "--format", "json",
        )
    )  # fmt: skip
    status = as_json(
        await cli(platform, "recall", "status", accepted["recall_id"], "--wait", "-f", "json")
    )

    assert accepted["affected_lots"] == 1
    assert accepted["affected_customer_count"] == 2
    assert status["notices_complete"] is True
    assert status["notified_customers"] == 2
    assert status["classification"] == "III"


async def test_lots_expiring_lists_lots_with_stock_soonest_first(
    story: tuple[DemoOutcome, str], platform: Platform
) -> None:
    outcome, _ = story

    lots = as_json(await cli(platform, "lots", "expiring", "--within-days", "3650", "-f", "json"))

    codes = [lot["lot_code"] for lot in lots]
    assert outcome.lots["oranges"].lot_code in codes
    assert outcome.lots["pressed"].lot_code not in codes  # all of it shipped
    expiry = [lot["expiry_date"] for lot in lots]
    assert expiry == sorted(expiry)


async def test_a_bad_key_is_refused_with_a_hint(platform: Platform) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["lots", "expiring", "--inventory-url", platform.urls()["inventory"]],
        env={"LOTTRACE_API_KEY": "not-the-key-0123456789"},
    )

    assert result.exit_code == 1
    assert "401 unauthorized" in result.stderr
    assert "LOTTRACE_API_KEY" in result.stderr


# ---------------------------------------------------------------------- dead letters


async def dead_letters(
    platform: Platform, topic: str, *, key: bytes | str, at_least: int
) -> list[dict[str, Any]]:
    """The entries of the topic's DLQ for one key, once there are at least `at_least`."""
    wanted = key.decode() if isinstance(key, bytes) else key
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        letters = as_json(await cli(platform, "dlq", "list", "--topic", topic, "-f", "json"))
        found[:] = [letter for letter in letters if letter["key"] == wanted]
        return len(found) >= at_least

    await wait_until(listed, timeout=30, what=f"{at_least} dead letters of {topic} for {wanted}")
    return found


async def test_dlq_list_shows_why_each_consumer_group_refused_a_record(
    platform: Platform,
) -> None:
    key = f"SO-POISON-{uuid.uuid4().hex[:6]}".encode()
    await produce(platform.bootstrap_servers, [("order-cancelled", key, b"{not json", [])])

    letters = await dead_letters(platform, "order-cancelled", key=key, at_least=2)

    assert {letter["consumer_group"] for letter in letters} == {"inventory", "fulfillment"}
    for letter in letters:
        assert letter["error_type"] == "malformed_json"
        assert letter["source"]["topic"] == "order-cancelled"
        assert letter["value"] == "{not json"


async def test_dlq_replay_sends_the_original_record_back_and_its_consumers_apply_it(
    platform: Platform, clients: Clients
) -> None:
    # A valid order a consumer refused before a fix: what `dead_letter` would have written.
    order_id = f"SO-REPLAY-{uuid.uuid4().hex[:6].upper()}"
    original = encode(
        OrderPlaced(
            order_id=order_id,
            customer={"customer_id": "CUST-REPLAY"},
            lines=[{"line_no": 1, "sku": "OJ-1L", "quantity": "1"}],
        ),
        source="/tests/oms",
    )
    refusal = [
        ("error_type", b"processing_failed"),
        ("error_message", b"RuntimeError: a bug since fixed"),
        ("source_topic", b"order-placed"),
        ("source_partition", b"0"),
        ("source_offset", b"123456"),
        ("consumer_group", b"inventory"),
    ]
    await produce(
        platform.bootstrap_servers,
        [("order-placed.dlq", original.key, original.value, [*original.headers, *refusal])],
    )
    [letter] = await dead_letters(platform, "order-placed", key=order_id, at_least=1)
    entry = letter["entry"]

    dry = await cli(
        platform, "dlq", "replay", "--topic", "order-placed",
        "--partition", str(entry["partition"]), "--offset", str(entry["offset"]), "--dry-run",
    )  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "nothing sent" in dry.stdout
    assert (await clients.inventory.get(f"/orders/{order_id}")).status_code == 404

    replayed = await cli(
        platform, "dlq", "replay", "--topic", "order-placed",
        "--partition", str(entry["partition"]), "--offset", str(entry["offset"]),
    )  # fmt: skip
    assert replayed.exit_code == 0, replayed.output

    async def known_to_both() -> bool:
        inventory = await clients.inventory.get(f"/orders/{order_id}")
        fulfillment = await clients.fulfillment.get(f"/orders/{order_id}")
        return inventory.status_code == 200 and fulfillment.status_code == 200

    await wait_until(known_to_both, timeout=30, what=f"{order_id} applied after the replay")
    records: list[ConsumerRecord[Any, Any]] = [
        record
        for record in await read_topic(platform.bootstrap_servers, "order-placed", timeout=10)
        if record.key == original.key
    ]
    assert len(records) == 1
    assert records[0].partition == 0
    assert records[0].value == original.value
    headers = headers_of(records[0])
    assert not set(headers) & set(DLQ_HEADERS)
    assert {name: value.decode() for name, value in original.headers}.items() <= headers.items()
    position = f"order-placed.dlq:{entry['partition']}:{entry['offset']}"
    assert headers[REPLAYED_FROM_HEADER] == position


async def test_replaying_everything_sends_each_refused_record_once(platform: Platform) -> None:
    key = f"SO-TWICE-{uuid.uuid4().hex[:6]}".encode()
    await produce(platform.bootstrap_servers, [("order-cancelled", key, b"[1, 2", [])])
    await dead_letters(platform, "order-cancelled", key=key, at_least=2)

    result = await cli(platform, "dlq", "replay", "--topic", "order-cancelled", "--all")

    assert result.exit_code == 0, result.output
    records = [
        record
        for record in await read_topic(platform.bootstrap_servers, "order-cancelled", timeout=10)
        if record.key == key
    ]
    # The original and one replay, though both consumer groups dead-lettered it.
    assert len(records) == 2
