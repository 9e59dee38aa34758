"""`lottrace import` against the real services, broker and PostgreSQL: the sample files go in
once however often they are run, bad rows are reported exactly while the good ones go in, and
an imported shipment is reached by a recall without ever moving stock."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from lottrace.client import Connection, LottraceClient, ServiceUrls
from lottrace.imports.formats import FORMATS, FileKind
from lottrace.imports.readers import read_table
from lottrace.imports.rejects import Rejection
from lottrace.imports.upload import SENDERS, ImportOutcome
from lottrace.imports.validation import check_table
from lottrace.infra import TansuBroker, wait_until
from services.fulfillment import app as fulfillment_service
from services.inventory import app as inventory_service
from services.recall import app as recall_service
from services.receiving import app as receiving_service
from tests.conftest import PostgresServer
from tests.integration.service_apps import ADMIN_KEY, quick_settings, running, until_served
from tests.integration.test_receiving import count
from tests.kafka_helpers import committed_offsets, end_offsets, headers_of, read_settled

SAMPLES = Path(__file__).parents[2] / "docs" / "samples"
SERVICE_MODULES = {
    "receiving": receiving_service,
    "inventory": inventory_service,
    "fulfillment": fulfillment_service,
    "recall": recall_service,
}


class ServiceRouter(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app its host names (`http://receiving`, ...)."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transports[request.url.host].handle_async_request(request)


@dataclass(frozen=True)
class Platform:
    api: LottraceClient
    clients: dict[str, httpx.AsyncClient]
    database_urls: dict[str, str]
    broker: TansuBroker


async def _platform(
    services: tuple[str, ...], postgres_server: PostgresServer, broker: TansuBroker
) -> AsyncIterator[Platform]:
    async with AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        apps: dict[str, FastAPI] = {}
        clients: dict[str, httpx.AsyncClient] = {}
        for name in services:
            urls[name] = await stack.enter_async_context(postgres_server.fresh_database())
            module = SERVICE_MODULES[name]
            apps[name] = module.create_app(quick_settings(module.Settings, urls[name], broker))
            clients[name] = await stack.enter_async_context(running(apps[name]))
        target = Connection(
            urls=ServiceUrls.from_mapping({name: f"http://{name}" for name in services}),
            api_key=ADMIN_KEY,
        )
        api = await stack.enter_async_context(LottraceClient(target, transport=ServiceRouter(apps)))
        yield Platform(api, clients, urls, broker)


@pytest_asyncio.fixture
async def platform(postgres_server: PostgresServer, broker: TansuBroker) -> AsyncIterator[Platform]:
    async for running_platform in _platform(tuple(SERVICE_MODULES), postgres_server, broker):
        yield running_platform


@pytest_asyncio.fixture
async def receiving_only(
    postgres_server: PostgresServer, broker: TansuBroker
) -> AsyncIterator[Platform]:
    async for running_platform in _platform(("receiving",), postgres_server, broker):
        yield running_platform


async def imported(
    platform: Platform, kind: FileKind, path: Path, *, dry_run: bool = False
) -> ImportOutcome:
    """The file imported as `lottrace import` does it, in batches of 2 rows."""
    checked = check_table(read_table(path), FORMATS[kind])
    outcome = await SENDERS[kind](
        platform.api, checked.rows, batch_size=2, dry_run=dry_run, advance=lambda _: None
    )
    outcome.rejected = sorted([*checked.rejected, *outcome.rejected])
    return outcome


async def received_lot(platform: Platform, lot_code: str) -> dict[str, Any]:
    response = await platform.clients["receiving"].get("/lots", params={"lot_code": lot_code})
    [lot] = response.json()
    return dict(lot)


async def data_quality_now(recall: httpx.AsyncClient) -> dict[str, Any]:
    """The data-quality monitor's report as of now: a check run at once
    (`POST /reports/data-quality/refresh`), not the stored scheduled one."""
    refreshed = await recall.post("/reports/data-quality/refresh")
    assert refreshed.status_code == 200, refreshed.text
    return dict(refreshed.json())


async def consumed(platform: Platform, group: str, topic: str, *outboxes: str) -> None:
    """Waits until the service `group` has applied everything on `topic` (its offsets are
    committed after its transaction), once the `outboxes` owing the topic have published it."""
    bootstrap = platform.broker.bootstrap_servers
    await read_settled(bootstrap, topic, *outboxes)

    async def caught_up() -> bool:
        ends = {tp: end for tp, end in (await end_offsets(bootstrap, topic)).items() if end}
        committed = await committed_offsets(bootstrap, group, topic)
        return all(committed.get(tp, 0) >= end for tp, end in ends.items())

    await wait_until(caught_up, timeout=30, what=f"{group} caught up with {topic}")


async def test_the_sample_files_imported_twice_go_in_once(platform: Platform) -> None:
    lots = await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    shipments = await imported(platform, FileKind.SHIPMENTS, SAMPLES / "shipments.csv")
    assert (lots.imported, lots.new_lots, lots.already_imported, lots.rejected) == (6, 5, 0, [])
    assert (shipments.imported, shipments.already_imported, shipments.rejected) == (5, 0, [])

    again = await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    shipments_again = await imported(platform, FileKind.SHIPMENTS, SAMPLES / "shipments.csv")
    assert (again.imported, again.already_imported) == (0, 6)
    assert (shipments_again.imported, shipments_again.already_imported) == (0, 5)

    urls, bootstrap = platform.database_urls, platform.broker.bootstrap_servers
    received = await read_settled(bootstrap, "goods-received", urls["receiving"])
    shipped = await read_settled(bootstrap, "order-shipped", urls["fulfillment"])
    assert sorted(json.loads(r.value)["data"]["location"] for r in received) == [
        "COLD-2",
        "DRY-1",
        "MAIN",
        "MAIN",
        "MAIN",
    ]  # fmt: skip  (the sold-out lot has no receipt)
    assert [json.loads(r.value)["data"]["imported"] for r in shipped] == [True] * 5
    registered = await read_settled(bootstrap, "lot-registrations", urls["receiving"])
    assert [json.loads(r.value)["data"]["lot_code"] for r in registered] == [
        "OJ-1L-20260715-0001"
    ]  # the sold-out lot: known everywhere, without stock
    assert await count(urls["receiving"], "SELECT count(*) FROM lots") == 5

    lot = await received_lot(platform, "OJ-1L-20260901-0001")
    assert lot["received_quantity"] == "300"  # 240 at MAIN and 60 at COLD-2
    assert lot["first_received_at"].startswith("2026-09-01T00:00:00")
    assert (lot["supplier"], lot["supplier_lot_code"]) == (
        {"supplier_id": "GROVE", "name": "Grove Farms"},
        "GF-7781",
    )
    sold_out = await received_lot(platform, "OJ-1L-20260715-0001")
    assert (sold_out["received_quantity"], sold_out["expiry_date"]) == ("0", "2027-01-12")


async def test_an_imported_shipment_is_recalled_and_moves_no_stock(platform: Platform) -> None:
    await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    await imported(platform, FileKind.SHIPMENTS, SAMPLES / "shipments.csv")
    [lot] = (
        await platform.clients["receiving"].get("/lots", params={"lot_code": "OJ-1L-20260901-0001"})
    ).json()
    recall, inventory = platform.clients["recall"], platform.clients["inventory"]
    trace = await until_served(
        recall,
        f"/trace/lots/{lot['lot_id']}/forward",
        lambda body: body["totals"]["shipment_lines"] == 2,
    )
    assert sorted(c["customer_id"] for c in trace["customers"]) == ["CUST-ACME", "CUST-CORNER"]
    report = await recall.get("/reports/fsma204", params={"lot_code": lot["lot_code"]})
    events = list(csv.DictReader(io.StringIO(report.text)))
    assert sorted((e["Event Type"], e["Ship-To ID"], e["Event Date"]) for e in events) == [
        ("Receiving", "", "2026-09-01"),
        ("Receiving", "", "2026-09-01"),
        ("Shipping", "CUST-ACME", "2026-09-14"),
        ("Shipping", "CUST-CORNER", "2026-10-05"),
    ]

    accepted = await recall.post(
        "/recalls",
        json={"reason": "off taste", "scope": {"lot_codes": [lot["lot_code"]], "sku": "OJ-1L"}},
    )
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["affected_customer_count"], accepted.json()["shipped_quantity"]) == (
        2,
        "156",
    )

    # 240 + 60 received; the 156 shipped are history. The two receipts may be applied in
    # separate batches: wait for the figure asserted, not for any stock.
    await until_served(
        inventory, f"/lots/{lot['lot_id']}", lambda body: Decimal(body["on_hand"]) == 300
    )
    # The absence of a "shipped" entry says something only once inventory has applied every
    # shipment announced.
    await consumed(platform, "inventory", "order-shipped", platform.database_urls["fulfillment"])
    history = await inventory.get(f"/lots/{lot['lot_id']}/history")
    changes = [entry["change"] for entry in history.json()]
    assert (changes.count("received"), "shipped" in changes) == (2, False), changes


async def test_a_lot_imported_sold_out_is_known_to_inventory_and_recall(
    platform: Platform,
) -> None:
    await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    await imported(platform, FileKind.SHIPMENTS, SAMPLES / "shipments.csv")
    lot = await received_lot(platform, "OJ-1L-20260715-0001")  # on_hand 0, shipped to ACME
    lot_id, inventory, recall = (
        lot["lot_id"],
        platform.clients["inventory"],
        platform.clients["recall"],
    )

    known = await until_served(inventory, f"/lots/{lot_id}", lambda body: True)
    assert (known["on_hand"], known["supplier_id"], known["expiry_date"]) == (
        "0",
        "GROVE",
        "2027-01-12",
    )
    returned = await inventory.post(
        "/returns",
        json={
            "return_id": "RT-SOLD-OUT-1",
            "customer": {"customer_id": "CUST-ACME"},
            "lines": [
                {"line_no": 1, "sku": "OJ-1L", "lot_code": lot["lot_code"], "quantity": "5",
                 "reason": "customer"}
            ],
        },
    )  # fmt: skip
    assert returned.status_code == 202, returned.text
    held = await until_served(
        inventory, f"/lots/{lot_id}", lambda body: Decimal(body["returned"]) == 5
    )
    assert [(at["location"], at["on_hand"], at["held"]) for at in held["locations"]] == [
        ("RETURNS", "5", True)
    ]
    returns = await inventory.get("/reports/returns", params={"days": 3650})
    assert returns.status_code == 200, returns.text
    by_lot = {group["key"]: group["returned"] for group in returns.json()["by_lot"]}
    assert by_lot[lot["lot_code"]] == "5"  # the lot reports know the lot

    await consumed(platform, "recall", "lot-registrations", platform.database_urls["receiving"])
    await consumed(platform, "recall", "order-shipped", platform.database_urls["fulfillment"])
    quality = await data_quality_now(recall)
    findings = {finding["code"]: finding for finding in quality["findings"]}
    assert findings["shipped_lot_never_received"]["count"] == 0, findings
    # The lot's records are whole: its receipt, and the ship-to address the file gave.
    assert lot_id not in {e["lot_id"] for e in findings["missing_fsma204_kdes"]["examples"]}
    report = await recall.get("/reports/fsma204", params={"lot_code": lot["lot_code"]})
    events = list(csv.DictReader(io.StringIO(report.text)))
    assert sorted((e["Event Type"], e["Event Date"]) for e in events) == [
        ("Receiving", "2026-07-15"),
        ("Shipping", "2026-08-03"),
    ]
    [shipping] = [e for e in events if e["Event Type"] == "Shipping"]
    assert "12 Rue du Marché" in shipping["Ship-To Address"]

    # The supplier's recall of what it delivered in July reaches the lot's customer.
    accepted = await recall.post(
        "/recalls",
        json={"reason": "supplier notice", "scope": {"supplier_id": "GROVE",
              "received_from": "2026-07-01", "received_to": "2026-07-31"}},
    )  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert (body["affected_customer_count"], body["shipped_quantity"]) == (1, "480")


async def test_bad_rows_are_reported_exactly_and_the_good_rows_go_in(
    receiving_only: Platform, tmp_path: Path
) -> None:
    platform = receiving_only
    await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    path = tmp_path / "more-lots.csv"
    path.write_text(
        "row_key,sku,lot_code,location,on_hand,uom,received_at,expiry_date,unit_cost,currency\n"
        "M-1,OJ-1L,OJ-1L-20261002-0001,COLD-2,20,EA,2026-10-02,2027-03-31,0.88,EUR\n"
        "M-2,OJ-1L,OJ-1L-20261002-0001,DRY-1,5,EA,2026-10-02,2027-04-30,,\n"
        "M-3,OJ-1L,OJ-1L-20261002-0001,DRY-1,5,KG,2026-10-02,,,\n"
        "M-4,OJ-1L,OJ-1L-20261002-0001,DRY-1,5,EA,2026-10-02,,1,USD\n"
        "M-5,TEA,T-1,MAIN,-2,EA,2026-02-30,,,\n"
        "M-6,TEA,T-2,MAIN,12,EA,2026-10-03,,,\n"
        "M-6,TEA,T-3,MAIN,12,EA,2026-10-03,,,\n"
        "M-7,TEA,T-4,MAIN,12,EA,2026-10-03,,,\n"
    )
    dry = await imported(platform, FileKind.LOTS, path, dry_run=True)
    url = platform.database_urls["receiving"]
    assert await count(url, "SELECT count(*) FROM receipts") == 5  # the samples' only
    outcome = await imported(platform, FileKind.LOTS, path)
    assert (dry.imported, dry.new_lots, dry.rejected) == (2, 1, outcome.rejected)
    assert outcome.rejected == [
        Rejection(
            3,
            "expiry_date",
            "lot OJ-1L-20261002-0001 of OJ-1L exists with other dates: expiry_date 2027-04-30"
            " differs from the lot's 2027-03-31",
        ),
        Rejection(4, "uom", "lot OJ-1L-20261002-0001 of OJ-1L is counted in EA, not KG"),
        Rejection(5, "currency", "the lot is costed in EUR; this receipt is in USD"),
        Rejection(6, "on_hand", "must be at least 0, not -2"),
        Rejection(6, "received_at", "2026-02-30 is not a date (YYYY-MM-DD) or date and time"),
        Rejection(7, "row_key", "row key M-6 is on lines 7, 8: give each row its own row_key"),
        Rejection(8, "row_key", "row key M-6 is on lines 7, 8: give each row its own row_key"),
    ]
    assert (outcome.imported, outcome.new_lots) == (2, 1)
    assert await count(url, "SELECT count(*) FROM receipts") == 5 + 2
    assert await count(url, "SELECT count(*) FROM imported_lot_rows") == 6 + 2
    lot = await received_lot(platform, "OJ-1L-20261002-0001")
    assert lot["received_quantity"] == "500"  # 480 + 20: nothing of the refused rows
    assert datetime.fromisoformat(lot["first_received_at"]) == datetime(2026, 10, 2, tzinfo=UTC)


async def test_moments_in_the_future_and_lots_misnamed_by_id_are_refused(
    platform: Platform, tmp_path: Path
) -> None:
    await imported(platform, FileKind.LOTS, SAMPLES / "lots.csv")
    lots = tmp_path / "future-lots.csv"
    lots.write_text(
        "row_key,sku,lot_code,location,on_hand,received_at\n"
        "F-1,TEA,T-1,MAIN,5,2026-01-05\n"
        "F-2,TEA,T-2,MAIN,5,2999-01-05\n"
    )
    shipments = tmp_path / "future-shipments.csv"
    shipments.write_text(
        "row_key,order_id,customer_id,shipped_at,sku,lot_code,quantity\n"
        "G-1,SO-1,C1,2026-02-01,TEA,T-1,1\n"
        "G-2,SO-2,C1,2999-02-01T10:00:00Z,TEA,T-1,1\n"
    )
    lots_outcome = await imported(platform, FileKind.LOTS, lots)
    shipments_outcome = await imported(platform, FileKind.SHIPMENTS, shipments)
    assert (lots_outcome.imported, lots_outcome.rejected) == (
        1,
        [Rejection(3, "received_at", "received_at 2999-01-05T00:00:00+00:00 is in the future:"
                   " give when it really happened")],
    )  # fmt: skip
    assert (shipments_outcome.imported, shipments_outcome.rejected) == (
        1,
        [Rejection(3, "shipped_at", "shipped_at 2999-02-01T10:00:00+00:00 is in the future:"
                   " give when it really happened")],
    )  # fmt: skip

    # A client other than `lottrace import` names a lot by the id of another lot: recall,
    # which knows every received lot, dead-letters the shipment rather than keep it there.
    honey = await received_lot(platform, "H2026-0412")
    misnamed = {
        "row_key": "BAD-1", "order_id": "SO-X", "customer_id": "C9",
        "shipped_at": "2026-09-01T00:00:00Z", "sku": "OJ-1L",
        "lot_code": "OJ-1L-20260901-0001", "quantity": "1",
        "lot_id": honey["lot_id"], "uom": "EA",
    }  # fmt: skip
    response = await platform.clients["fulfillment"].post(
        "/imports/shipments", json={"rows": [misnamed]}
    )
    assert response.status_code == 200, response.text
    urls, bootstrap = platform.database_urls, platform.broker.bootstrap_servers
    await consumed(platform, "recall", "order-shipped", urls["fulfillment"])
    [letter] = await read_settled(bootstrap, "order-shipped.dlq", urls["recall"])
    assert headers_of(letter)["error_type"] == "lot_mismatch"
    assert (
        f"lot {honey['lot_id']} is H2026-0412 of HONEY-500G" in headers_of(letter)["error_message"]
    )
    trace = await platform.clients["recall"].get(f"/trace/lots/{honey['lot_id']}/forward")
    assert "C9" not in {customer["customer_id"] for customer in trace.json()["customers"]}
