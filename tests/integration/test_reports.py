"""The lot reports and the data-quality monitor against a real broker and PostgreSQL: a small
history is seeded through the topics and the HTTP API, and each report is checked against
figures worked out by hand (docs/reports.md says how each is computed)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncpg
import httpx
import openpyxl
import pytest_asyncio
from prometheus_client import REGISTRY
from pydantic import BaseModel

from lottrace.infra import TansuBroker, wait_until
from services.inventory.app import WIRING as INVENTORY
from services.inventory.app import Settings as InventorySettings
from services.inventory.app import create_app as inventory_app
from services.recall import db as recall_db
from services.recall import quality, quality_check
from services.recall.app import Settings as RecallSettings
from services.recall.app import create_app as recall_app
from shared.contracts.events import GoodsReceived, OrderShipped, RecallIssued
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.tables import XLSX_MEDIA_TYPE
from tests.integration.events import applied, event_id
from tests.integration.migrated import migrations_before
from tests.integration.service_apps import quick_settings, running, until_served
from tests.kafka_helpers import publish

NOW = datetime.now(UTC)
TODAY = NOW.date()
CUSTOMER = {"customer_id": "C-DELI", "name": "Deli"}
E = TypeVar("E", bound=BaseModel)
INVENTORY_MIGRATIONS = INVENTORY.migrations


@pytest_asyncio.fixture
async def inventory(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    settings = quick_settings(InventorySettings, database_url, broker)
    async with running(inventory_app(settings)) as client:
        yield client


def receipt(
    code: str, quantity: int, *, supplier: str, expires_in: int | None, **more: Any
) -> GoodsReceived:
    """Lot `code` (its SKU the code up to the dash), received 30 days ago."""
    return GoodsReceived(
        receipt_id=f"R-{code}",
        lot_id=uuid.uuid4(),
        lot_code=code,
        sku=code.split("-", maxsplit=1)[0],
        quantity=quantity,
        location="MAIN",
        received_at=NOW - timedelta(days=30),
        supplier={"supplier_id": supplier},
        expiry_date=TODAY + timedelta(days=expires_in) if expires_in is not None else None,
        **more,
    )


def shipped(lot: GoodsReceived, quantity: int, *, days_ago: int) -> OrderShipped:
    number = uuid.uuid4().hex[:8]
    return OrderShipped(
        shipment_id=f"SH-{number}",
        order_id=f"SO-{number}",
        customer=CUSTOMER,
        shipped_at=NOW - timedelta(days=days_ago),
        lines=[
            {
                "line_no": 1,
                "sku": lot.sku,
                "lot_id": lot.lot_id,
                "lot_code": lot.lot_code,
                "quantity": quantity,
            }
        ],
    )


def recalled(lot: GoodsReceived) -> RecallIssued:
    return RecallIssued(
        recall_id="RC-TEA",
        issued_at=NOW,
        reason="foreign matter",
        classification="II",
        scope={"lot_ids": [lot.lot_id]},
        affected_lots=[{"lot_id": lot.lot_id, "lot_code": lot.lot_code, "sku": lot.sku}],
        affected_customer_count=0,
        shipped_quantity=0,
    )


async def seed_history(inventory: httpx.AsyncClient, bootstrap: str) -> dict[str, GoodsReceived]:
    """Two jam lots from ORCHARD (expiring in 5 and 20 days), two tea lots from HILLS (one
    failed QC, one recalled); jam shipped 10 + 28 (A) and 4 (B) units, 6 of A returned."""
    lots = {
        "JAM-A": receipt("JAM-A", 100, supplier="ORCHARD", expires_in=5),
        "JAM-B": receipt("JAM-B", 100, supplier="ORCHARD", expires_in=20),
        "TEA-A": receipt("TEA-A", 50, supplier="HILLS", expires_in=100, qc_required=True),
        "TEA-B": receipt("TEA-B", 50, supplier="HILLS", expires_in=None),
    }
    await publish(bootstrap, *lots.values())
    jam_a, jam_b = lots["JAM-A"], lots["JAM-B"]
    await publish(
        bootstrap,
        shipped(jam_a, 10, days_ago=20),  # outside a 16-day sales window
        shipped(jam_a, 28, days_ago=2),
        shipped(jam_b, 4, days_ago=1),
        recalled(lots["TEA-B"]),
    )
    await until_served(inventory, f"/lots/{jam_b.lot_id}", lambda lot: lot["on_hand"] == "96")
    await until_served(inventory, f"/lots/{jam_a.lot_id}", lambda lot: lot["on_hand"] == "62")
    await until_served(inventory, f"/lots/{lots['TEA-B'].lot_id}", lambda lot: lot["recall_id"])
    failed = await inventory.post(
        f"/lots/{lots['TEA-A'].lot_id}/release", json={"qc_result": "failed"}
    )
    assert failed.status_code == 200, failed.text
    back = await inventory.post(
        "/returns",
        json={
            "return_id": "RT-1",
            "customer": CUSTOMER,
            "lines": [
                {"line_no": 1, "lot_id": str(jam_a.lot_id), "sku": "JAM", "quantity": 5,
                 "reason": "damaged"},
                {"line_no": 2, "lot_id": str(jam_a.lot_id), "sku": "JAM", "quantity": 1,
                 "reason": "quality"},
            ],
        },
    )  # fmt: skip
    assert back.status_code == 202, back.text
    await until_served(inventory, f"/lots/{jam_a.lot_id}", lambda lot: lot["on_hand"] == "68")
    return lots


async def test_the_inventory_reports_match_the_figures_worked_out_by_hand(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await seed_history(inventory, broker.bootstrap_servers)

    # 32 jam units shipped in the last 16 days: 2 a day. A (6 selling days, today included)
    # sells 12 of the 62 it has for sale (its 6 returned units wait in RETURNS); B's 21 days
    # sell 42, less A's 12. Tea: one lot rejected, one recalled, neither for sale.
    short = (await inventory.get("/reports/short-dated?days=30&sales_days=16")).json()
    assert [
        (lot["lot_code"], lot["days_left"], lot["on_hand"], lot["daily_sell_rate"],
         lot["sells_in_time"], lot["wont_sell_in_time"])
        for lot in short["lots"]
    ] == [
        ("JAM-A", 6, "62", "2", "12", "50"),
        ("JAM-B", 21, "96", "2", "30", "66"),
    ]  # fmt: skip

    # Received 30 days ago, 31 days with today: A 38/31 = 1.23 a day, B 4/31 = 0.13; the
    # SKU's average 0.68, so A is fast (>= 1.02) and B slow (<= 0.34). A's cover: 68 / 1.226.
    movement = (await inventory.get("/reports/lot-movement?days=90")).json()
    lots = {lot["lot_code"]: lot for lot in movement["lots"]}
    assert [
        (code, lots[code]["sell_through_percent"], lots[code]["units_per_day"],
         lots[code]["days_of_cover"], lots[code]["movement"])
        for code in ("JAM-A", "JAM-B")
    ] == [
        ("JAM-A", "38", "1.23", "55.5", "fast"),
        ("JAM-B", "4", "0.13", "744", "slow"),
    ]  # fmt: skip
    # Received 30 days ago, outside a 7-day window, but still on hand: still listed.
    recent = (await inventory.get("/reports/lot-movement?days=7")).json()
    assert {"JAM-A", "JAM-B"} <= {lot["lot_code"] for lot in recent["lots"]}
    jam = next(sku for sku in movement["skus"] if sku["sku"] == "JAM")
    assert (jam["fast"], jam["slow"], jam["average_units_per_day"]) == (
        ["JAM-A"],
        ["JAM-B"],
        "0.68",
    )

    # 6 of A's 38 shipped came back (15.8 %); of the jam's 42, 6 (14.3 %).
    returns = (await inventory.get("/reports/returns")).json()
    rates = {
        (group["dimension"], group["key"]): (group["returned"], group["return_rate_percent"])
        for dimension in ("by_lot", "by_sku", "by_supplier", "by_reason")
        for group in returns[dimension]
    }
    assert rates == {
        ("lot", "JAM-A"): ("6", "15.8"),
        ("sku", "JAM"): ("6", "14.3"),
        ("supplier", "ORCHARD"): ("6", "14.3"),
        ("reason", "damaged"): ("5", "11.9"),
        ("reason", "quality"): ("1", "2.4"),
    }

    scorecard = (await inventory.get("/reports/suppliers")).json()
    scores = {score["supplier_id"]: score for score in scorecard["suppliers"]}
    hills, orchard = scores["HILLS"], scores["ORCHARD"]
    assert (hills["lots"], hills["units_received"], hills["qc_failed_lots"]) == (2, "100", 1)
    # TEA-A's QC quarantine on receipt is not a quality hold.
    assert (hills["qc_quarantined_lots"], hills["held_lots"]) == (1, 0)
    assert (hills["recalls"], hills["recalled_lots"]) == (1, 1)
    assert (hills["return_rate_percent"], hills["average_shelf_life_days_at_receipt"]) == (
        None,
        "130",
    )
    assert (orchard["shipped"], orchard["returned"], orchard["return_rate_percent"]) == (
        "42",
        "6",
        "14.3",
    )
    assert (orchard["qc_failed_lots"], orchard["held_lots"], orchard["recalls"]) == (0, 0, 0)
    assert orchard["average_shelf_life_days_at_receipt"] == "42.5"  # 35 and 50 days


async def test_an_imported_shipment_counts_as_a_sale_and_can_be_returned_but_moves_no_stock(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    """A shipment from before lottrace (`imported: true`): the short-dated sell rate and the
    customer's returns see it; the lot's stock does not move."""
    pie = receipt("PIE-A", 100, supplier="ORCHARD", expires_in=10)
    before = shipped(pie, 14, days_ago=3).model_copy(update={"imported": True})
    await publish(broker.bootstrap_servers, pie, before)

    async def in_history() -> bool:
        response = await inventory.get(f"/lots/{pie.lot_id}/history")
        return response.status_code == 200 and any(
            entry["change"] == "shipped_imported" for entry in response.json()
        )

    await wait_until(in_history, timeout=30, what="the imported shipment in the lot's history")
    lot = (await inventory.get(f"/lots/{pie.lot_id}")).json()
    assert (lot["on_hand"], lot["reserved"], lot["shipped"]) == ("100", "0", "0")

    # 14 units in the last 7 days: 2 a day; 11 selling days sell 22 of the 100.
    short = (await inventory.get("/reports/short-dated?days=30&sales_days=7")).json()
    [row] = [row for row in short["lots"] if row["lot_code"] == "PIE-A"]
    assert (row["daily_sell_rate"], row["sells_in_time"], row["wont_sell_in_time"]) == (
        "2",
        "22",
        "78",
    )

    back = await inventory.post(
        "/returns",
        json={
            "return_id": "RT-PIE",
            "customer": CUSTOMER,
            "lines": [{"line_no": 1, "lot_id": str(pie.lot_id), "sku": "PIE", "quantity": 4,
                       "reason": "damaged"}],
        },
    )  # fmt: skip
    assert back.status_code == 202, back.text
    await until_served(inventory, f"/lots/{pie.lot_id}", lambda lot: lot["returned"] == "4")
    history = (await inventory.get(f"/lots/{pie.lot_id}/history")).json()
    [returned] = [entry for entry in history if entry["change"] == "returned"]
    assert "beyond what was shipped" not in returned["detail"]

    # Received 100 here plus 14 shipped before the move; 4 of the 14 came back.
    returns = (await inventory.get("/reports/returns")).json()
    [by_lot] = [group for group in returns["by_lot"] if group["key"] == "PIE-A"]
    assert (by_lot["shipped"], by_lot["return_rate_percent"]) == ("14", "28.6")


async def test_a_lot_is_received_at_its_earliest_receipt_whatever_order_they_come_in(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    """As in receiving: a receipt of the lot processed later but made earlier (an import of
    its stock from before lottrace) moves its receipt date back."""
    first = receipt("FIG-A", 10, supplier="ORCHARD", expires_in=60)
    earlier = first.model_copy(
        update={"receipt_id": "R-FIG-A-2", "received_at": NOW - timedelta(days=40)}
    )
    await publish(broker.bootstrap_servers, first)
    await until_served(inventory, f"/lots/{first.lot_id}", lambda lot: lot["on_hand"] == "10")
    await publish(broker.bootstrap_servers, earlier)
    await until_served(inventory, f"/lots/{first.lot_id}", lambda lot: lot["on_hand"] == "20")
    movement = (await inventory.get("/reports/lot-movement?days=90")).json()
    [lot] = [lot for lot in movement["lots"] if lot["lot_code"] == "FIG-A"]
    assert lot["received_on"] == (NOW - timedelta(days=40)).date().isoformat()


async def test_the_reports_come_as_csv_and_xlsx_with_the_json_field_names(
    inventory: httpx.AsyncClient, broker: TansuBroker
) -> None:
    await seed_history(inventory, broker.bootstrap_servers)

    sheet = await inventory.get("/reports/short-dated?days=30&sales_days=16&format=csv")
    assert sheet.headers["content-type"].startswith("text/csv")
    assert 'filename="short-dated_' in sheet.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    assert [(row["lot_code"], row["wont_sell_in_time"]) for row in rows] == [
        ("JAM-A", "50"),
        ("JAM-B", "66"),
    ]

    workbook = await inventory.get("/reports/lot-movement?format=xlsx")
    assert workbook.headers["content-type"] == XLSX_MEDIA_TYPE
    book = openpyxl.load_workbook(io.BytesIO(workbook.content))
    assert book.sheetnames == ["Lots", "SKUs"]
    lots = [
        dict(zip([c.value for c in book["Lots"][1]], [c.value for c in row], strict=True))
        for row in book["Lots"].iter_rows(min_row=2)
    ]
    jam_a = next(lot for lot in lots if lot["lot_code"] == "JAM-A")
    assert (jam_a["shipped"], jam_a["movement"], jam_a["received_on"].date()) == (
        38,
        "fast",
        TODAY - timedelta(days=30),
    )


# ------------------------------------------------------------------ data-quality monitor


@pytest_asyncio.fixture
async def recall(database_url: str, broker: TansuBroker) -> AsyncIterator[httpx.AsyncClient]:
    settings = quick_settings(RecallSettings, database_url, broker)
    async with running(recall_app(settings)) as client:
        client.database_url = database_url  # type: ignore[attr-defined]
        yield client


ADDRESSED = {"customer_id": "C-SHOP", "address": {"line1": "1 Main St", "city": "Springfield"}}


def purchase(code: str, **given: Any) -> GoodsReceived:
    """A complete receipt of lot `code`: supplier, their lot code, expiry date, location."""
    fields: dict[str, Any] = {
        "supplier": {"supplier_id": "ORCHARD", "name": "Orchard"},
        "supplier_lot_code": f"S-{code}",
        "expiry_date": TODAY + timedelta(days=60),
    }
    return changed(receipt(code, 10, supplier="ORCHARD", expires_in=60), **(fields | given))


def changed(event: E, **changes: Any) -> E:
    """The event with these fields changed, validated as the producer would."""
    return type(event).model_validate({**event.model_dump(), **changes})


async def settled(recall: httpx.AsyncClient, bootstrap: str, *events: Any) -> None:
    """Publish the events and wait until recall has applied every one."""
    sent = await publish(bootstrap, *events)
    database_url: str = recall.database_url  # type: ignore[attr-defined]
    ids = [event_id(message) for message in sent]
    await wait_until(lambda: applied(database_url, ids), timeout=30, what="events applied")


def shipment_to(customer: dict[str, Any], lot: GoodsReceived) -> OrderShipped:
    return changed(shipped(lot, 1, days_ago=0), customer=customer)


async def test_the_monitor_finds_nothing_on_clean_data(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    juice, soap = purchase("OJ-1"), purchase("SOAP-1", expiry_date=None)  # soap: no shelf life
    made = purchase(
        "JUICE-1",
        supplier=None,
        supplier_lot_code=None,
        inputs=[{"lot_id": juice.lot_id, "lot_code": "OJ-1", "sku": "OJ", "quantity": 2}],
    )
    await settled(recall, broker.bootstrap_servers, juice, soap)
    await settled(recall, broker.bootstrap_servers, made, shipment_to(ADDRESSED, juice))

    report = (await recall.post("/reports/data-quality/refresh")).json()
    assert (report["clean"], report["lots_checked"]) == (True, 3), report
    assert {finding["count"] for finding in report["findings"]} == {0}
    assert (
        REGISTRY.get_sample_value(
            "lottrace_data_quality_findings", {"finding": "missing_expiry_date"}
        )
        == 0
    )


async def test_the_monitor_finds_each_defect_seeded_on_purpose(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    dated, undated = purchase("OJ-1"), purchase("OJ-2", expiry_date=None)
    no_supplier = purchase("BEAN-1", supplier=None, supplier_lot_code=None)
    no_code = purchase("TEA-1", supplier_lot_code=None)
    ghost = purchase("GHOST-1")  # shipped, never received
    made = purchase(
        "JAM-1",
        supplier=None,
        supplier_lot_code=None,
        inputs=[{"lot_id": uuid.uuid4(), "lot_code": "PLUM-9", "sku": "PLUM", "quantity": 2}],
    )
    await settled(recall, broker.bootstrap_servers, dated, undated, no_supplier, no_code, made)
    await settled(
        recall,
        broker.bootstrap_servers,
        shipment_to(ADDRESSED, ghost),
        shipment_to({"customer_id": "C-NOWHERE"}, dated),
    )

    report = (await recall.post("/reports/data-quality/refresh?examples=5")).json()
    found = {
        finding["code"]: (finding["count"], [e["lot_code"] for e in finding["examples"]])
        for finding in report["findings"]
    }
    assert found.pop("missing_fsma204_kdes")[0] == 2
    assert found == {
        "shipped_lot_never_received": (1, ["GHOST-1"]),
        "missing_expiry_date": (1, ["OJ-2"]),
        "missing_supplier": (1, ["BEAN-1"]),
        "missing_supplier_lot_code": (1, ["TEA-1"]),
        "unknown_production_inputs": (1, ["JAM-1"]),
    }
    kdes = next(f for f in report["findings"] if f["code"] == "missing_fsma204_kdes")
    details = {example["lot_code"]: example["detail"] for example in kdes["examples"]}
    assert details == {
        "BEAN-1": "Receiving: Immediate Previous Source",
        "OJ-1": "Shipping: Ship-To Address",
    }
    assert all(finding["how_to_fix"] for finding in report["findings"])
    assert (
        REGISTRY.get_sample_value(
            "lottrace_data_quality_findings", {"finding": "shipped_lot_never_received"}
        )
        == 1
    )

    sheet = await recall.get("/reports/data-quality?format=csv")
    rows = {row["code"]: row["count"] for row in csv.DictReader(io.StringIO(sheet.text))}
    assert (rows["missing_supplier"], rows["missing_fsma204_kdes"]) == ("1", "2")


async def test_the_check_is_stored_served_and_run_by_one_replica_at_a_time(
    recall: httpx.AsyncClient, broker: TansuBroker
) -> None:
    """GET serves the stored check; a scheduled turn runs one only when it takes the lock and
    the stored check is due, else it exports the stored counts."""
    await settled(
        recall, broker.bootstrap_servers, purchase("BEAN-1", supplier=None, supplier_lot_code=None)
    )
    checked = (await recall.post("/reports/data-quality/refresh")).json()
    served = (await recall.get("/reports/data-quality")).json()
    assert served == checked
    assert served["clean"] is False
    too_many = await recall.get(f"/reports/data-quality?examples={quality.MAX_EXAMPLES + 1}")
    assert too_many.status_code == 422

    url: str = recall.database_url  # type: ignore[attr-defined]
    holder, runner = await asyncpg.connect(url), await asyncpg.connect(url)
    # As the service's pool decodes them.
    await runner.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    always = partial(quality_check.scheduled, interval=timedelta(0))
    try:
        async with holder.transaction():  # another replica's check, running
            assert await holder.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", recall_db.QUALITY_LOCK
            ), "the lock the other replica's check holds"
            async with runner.transaction():
                await always(SimpleNamespace(connection=runner))  # type: ignore[arg-type]
        assert (await recall.get("/reports/data-quality")).json() == checked
        async with runner.transaction():
            await always(SimpleNamespace(connection=runner))  # type: ignore[arg-type]
    finally:
        await holder.close()
        await runner.close()
    again = (await recall.get("/reports/data-quality")).json()
    assert again["checked_at"] > checked["checked_at"]
    assert again["findings"] == checked["findings"]


async def test_the_sell_rate_facts_are_backfilled_from_the_shipments_already_applied(
    database_url: str, tmp_path: Path
) -> None:
    """A database from before migration 0008: its shipped history becomes per-day totals."""
    older = migrations_before("inventory", INVENTORY_MIGRATIONS, "0008", scratch=tmp_path)
    await migrate(database_url, older)
    lot = uuid.uuid4()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO lot_history (lot_id, at, change, quantity, cause) VALUES
                ($1, '2026-11-01 10:00Z', 'shipped', 3, 'e1'),
                ($1, '2026-11-01 23:00Z', 'shipped', 4, 'e2'),
                ($1, '2026-11-02 08:00Z', 'shipped', 5, 'e3'),
                ($1, '2026-11-02 09:00Z', 'reserved', 9, 'e4')
            """,
            lot,
        )
        await migrate(
            database_url, [("runtime", RUNTIME_MIGRATIONS), ("inventory", INVENTORY_MIGRATIONS)]
        )
        days = await connection.fetch(
            "SELECT day, quantity FROM lot_shipped_days WHERE lot_id = $1 ORDER BY day", lot
        )
    finally:
        await connection.close()
    assert [(row["day"].isoformat(), row["quantity"]) for row in days] == [
        ("2026-11-01", 7),
        ("2026-11-02", 5),
    ]
