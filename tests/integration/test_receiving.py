"""Receiving over HTTP against a real PostgreSQL and broker: lot numbering, idempotency,
re-receipts, production inputs, GS1 scans, and bad input that writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from aiokafka import ConsumerRecord

from lottrace.infra import TansuBroker
from services.receiving.app import Settings, create_app
from shared.runtime.settings import KafkaSettings
from tests.integration.service_apps import ADMIN_API_KEYS, kafka_env, running
from tests.kafka_helpers import read_settled

GS = "\x1d"
# ]C1 GS1-128: (01) GTIN, (17) expiry March 2027 day 00, (11) produced 2026-11-01,
# (10) lot 10D9T ended by FNC1, (37) count 12.
SCANNED_CASE = "]C1" + "0109501101530003" + "17270300" + "11261101" + "1010D9T" + GS + "3712"


@pytest_asyncio.fixture
async def receiving(
    database_url: str, broker: TansuBroker, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    rules = tmp_path / "lot-codes.yaml"
    rules.write_text(
        "default: '{sku}-{received:%Y%m%d}-{seq:04d}'\n"
        "suppliers:\n"
        "  SUNNY: '{supplier_lot_code}'\n"
        "skus:\n"
        "  HONEY: 'H{received:%y%j}{seq:03d}'\n"
    )
    settings = Settings(
        database_url=database_url,
        kafka=KafkaSettings(**kafka_env(broker)),
        lot_code_rules_file=rules,
        api_keys=ADMIN_API_KEYS,
    )
    async with running(create_app(settings)) as client:
        client.database_url = database_url  # type: ignore[attr-defined]
        yield client


async def count(database_url: str, query: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query))
    finally:
        await connection.close()


async def published(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> list[ConsumerRecord[Any, Any]]:
    """Every goods-received event, once receiving's outbox has nothing left to publish."""
    database_url: str = receiving.database_url  # type: ignore[attr-defined]
    return await read_settled(broker.bootstrap_servers, "goods-received", database_url)


async def receipt(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/receipts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_concurrent_receipts_get_consecutive_lot_codes_without_gaps_or_duplicates(
    receiving: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(receiving.post("/receipts", json={"sku": "OJ-1L", "quantity": "1"}) for _ in range(20))
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    day = date.today().strftime("%Y%m%d")
    codes = sorted(r.json()["lot_code"] for r in responses)
    assert codes == [f"OJ-1L-{day}-{n:04d}" for n in range(1, 21)]


async def test_lot_code_rules_per_sku_and_per_supplier_apply(receiving: httpx.AsyncClient) -> None:
    by_supplier = await receipt(
        receiving,
        sku="OJ-1L",
        quantity="5",
        supplier={"supplier_id": "SUNNY"},
        supplier_lot_code="SUN-778",
    )
    assert by_supplier["lot_code"] == "SUN-778"
    honey = await receipt(receiving, sku="HONEY", quantity="5", supplier={"supplier_id": "SUNNY"})
    assert honey["lot_code"] == f"H{date.today():%y%j}001"  # the SKU's rule beats the supplier's
    missing = await receiving.post(
        "/receipts", json={"sku": "OJ-1L", "quantity": "5", "supplier": {"supplier_id": "SUNNY"}}
    )
    assert missing.status_code == 422
    assert missing.json()["error"] == "supplier_lot_code_required"


async def test_the_same_receipt_twice_returns_the_first_answer_and_creates_nothing_new(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> None:
    body = {"receipt_id": "RC-1", "sku": "OJ-1L", "quantity": "12", "expiry_date": "2027-01-31"}
    first = await receiving.post("/receipts", json=body)
    again = await receiving.post("/receipts", json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"

    keyed = {"sku": "OJ-1L", "quantity": "3"}
    one = await receiving.post("/receipts", json=keyed, headers={"Idempotency-Key": "scan-77"})
    two = await receiving.post("/receipts", json=keyed, headers={"Idempotency-Key": "scan-77"})
    assert one.json() == two.json()
    reused = await receiving.post(
        "/receipts", json={**keyed, "quantity": "4"}, headers={"Idempotency-Key": "scan-77"}
    )
    assert reused.status_code == 409
    assert reused.json()["error"] == "idempotency_conflict"

    events = await published(receiving, broker)
    assert len(events) == 2
    assert await count(receiving.database_url, "SELECT count(*) FROM receipts") == 2  # type: ignore[attr-defined]


async def test_racing_receipts_sharing_an_idempotency_key_make_one_receipt_and_no_error(
    receiving: httpx.AsyncClient,
) -> None:
    async def send(number: int) -> httpx.Response:
        body = {"receipt_id": f"RC-RACE-{number}", "sku": "OJ-1L", "quantity": "5"}
        return await receiving.post("/receipts", json=body, headers={"Idempotency-Key": "dock-9"})

    answers = await asyncio.gather(*(send(number) for number in range(6)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["receipt_id"] for answer in answers}) == 1  # the first one's
    assert await count(receiving.database_url, "SELECT count(*) FROM receipts") == 1  # type: ignore[attr-defined]


async def test_receiving_an_existing_lot_adds_to_it_when_the_dates_agree(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> None:
    first = await receipt(
        receiving, sku="OJ-1L", quantity="10", lot_code="L-7", expiry_date="2027-01-31"
    )
    second = await receipt(receiving, sku="OJ-1L", quantity="5", lot_code="L-7")
    assert second["lot_id"] == first["lot_id"]
    assert second["new_lot"] is False
    assert second["lot_received_quantity"] == "15"
    assert second["expiry_date"] == "2027-01-31"  # a re-receipt without dates keeps the lot's

    conflicting = await receiving.post(
        "/receipts",
        json={"sku": "OJ-1L", "quantity": "5", "lot_code": "L-7", "expiry_date": "2027-02-28"},
    )
    assert conflicting.status_code == 409
    assert conflicting.json()["error"] == "lot_dates_conflict"
    assert "expiry_date" in conflicting.json()["detail"]
    lot = (await receiving.get(f"/lots/{first['lot_id']}")).json()
    assert lot["received_quantity"] == "15"
    events = await published(receiving, broker)
    assert [json.loads(e.value)["data"]["quantity"] for e in events] == ["10", "5"]


async def test_a_production_receipt_consumes_its_inputs_and_refuses_more_than_is_left(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> None:
    oranges = await receipt(receiving, sku="ORANGES", quantity="100", uom="KG")
    juice = await receipt(
        receiving,
        sku="OJ-1L",
        quantity="40",
        inputs=[{"lot_code": oranges["lot_code"], "sku": "ORANGES", "quantity": "60", "uom": "KG"}],
    )
    assert juice["inputs"] == [
        {
            "lot_id": oranges["lot_id"],
            "lot_code": oranges["lot_code"],
            "sku": "ORANGES",
            "quantity": "60",
            "uom": "KG",
        }
    ]
    too_much = await receiving.post(
        "/receipts",
        json={
            "sku": "OJ-1L",
            "quantity": "40",
            "inputs": [{"lot_id": oranges["lot_id"], "quantity": "41"}],
        },
    )
    assert too_much.status_code == 409
    assert too_much.json()["error"] == "insufficient_input"
    assert "40" in too_much.json()["detail"]
    assert "41" in too_much.json()["detail"]
    left = (await receiving.get(f"/lots/{oranges['lot_id']}")).json()
    assert left["consumed_quantity"] == "60"
    assert await count(receiving.database_url, "SELECT count(*) FROM lots") == 2  # type: ignore[attr-defined]
    events = [json.loads(r.value)["data"] for r in await published(receiving, broker)]
    assert sorted(e["sku"] for e in events) == ["OJ-1L", "ORANGES"]  # one event each
    [produced] = [e for e in events if e["sku"] == "OJ-1L"]
    assert produced["inputs"][0]["lot_id"] == oranges["lot_id"]


async def test_a_scanned_gs1_label_fills_the_receipt(receiving: httpx.AsyncClient) -> None:
    put = await receiving.put(
        "/products/OJ-1L", json={"description": "Orange juice 1 L", "gtins": ["9501101530003"]}
    )
    assert put.status_code == 200, put.text
    assert put.json()["gtins"] == ["09501101530003"]

    scanned = await receiving.post(
        "/receipts/scan",
        json={"barcode": SCANNED_CASE},
    )
    assert scanned.status_code == 201, scanned.text
    lot = scanned.json()
    assert lot["sku"] == "OJ-1L"  # found by its GTIN
    assert lot["gtin"] == "09501101530003"
    assert lot["lot_code"] == "10D9T"  # a lot code starting with digits is still the lot
    assert lot["expiry_date"] == "2027-03-31"  # day 00: the last day of the month
    assert lot["production_date"] == "2026-11-01"
    assert lot["quantity"] == "12"  # the count (37)

    typed = await receiving.post(
        "/receipts/scan",
        json={"barcode": "(01)09501101530003(17)270300(11)261101(10)10D9T", "quantity": "6"},
    )
    assert typed.status_code == 201, typed.text
    assert typed.json()["lot_id"] == lot["lot_id"]  # another case of the same batch
    assert typed.json()["lot_received_quantity"] == "18"

    unknown = await receiving.post(
        "/receipts/scan", json={"barcode": "(01)04006381333931(10)B1", "quantity": "1"}
    )
    assert unknown.json()["sku"] == "04006381333931"  # no product: the GTIN serves as the SKU


async def test_a_bad_scan_is_a_422_naming_the_element(receiving: httpx.AsyncClient) -> None:
    cases = {
        "(01)09501101530004(10)ABC": "(01)",  # check digit
        "(01)09501101530003(17)261341(10)ABC": "(17)",  # no 41st day
        "(01)09501101530003(23)X": "(23)",  # no such application identifier
    }
    for barcode, element in cases.items():
        response = await receiving.post(
            "/receipts/scan", json={"barcode": barcode, "quantity": "1"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_barcode"
        assert element in response.json()["detail"]
    no_count = await receiving.post("/receipts/scan", json={"barcode": "(01)09501101530003(10)ABC"})
    assert no_count.status_code == 422
    assert no_count.json()["error"] == "quantity_required"


async def test_bad_receipts_are_refused_and_write_nothing(
    receiving: httpx.AsyncClient, broker: TansuBroker
) -> None:
    bad = [
        ({"sku": "OJ-1L", "quantity": "0"}, 422, "invalid_request"),
        ({"sku": "OJ-1L", "quantity": "abc"}, 422, "invalid_request"),
        ({"sku": "", "quantity": "1"}, 422, "invalid_request"),
        ({"sku": "OJ-1L", "quantity": "1", "expiry_date": "2027-02-30"}, 422, "invalid_request"),
        ({"sku": "OJ-1L", "quantity": "1", "gtin": "09501101530004"}, 422, "invalid_request"),
        ({"sku": "OJ-1L", "quantity": "1", "colour": "orange"}, 422, "invalid_request"),
        (
            {
                "sku": "OJ-1L",
                "quantity": "1",
                "production_date": "2027-01-02",
                "expiry_date": "2027-01-01",
            },
            422,
            "invalid_dates",
        ),
        (
            {"sku": "OJ-1L", "quantity": "1", "unit_cost": {"amount": "1.5", "currency": "euro"}},
            422,
            "invalid_request",
        ),
    ]
    for body, status, error in bad:
        response = await receiving.post("/receipts", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"] == error, (body, response.json())
    huge = await receiving.post(
        "/receipts",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert await count(receiving.database_url, "SELECT count(*) FROM lots") == 0  # type: ignore[attr-defined]
    assert await published(receiving, broker) == []
