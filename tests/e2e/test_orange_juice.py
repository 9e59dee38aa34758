"""The orange-juice story, end to end: all four services as processes, a real broker and a
real PostgreSQL. Lots are received, orders arrive from upstream, shipments go out, a
customer complains about one lot, and the recall reaches exactly who received it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from lottrace.infra import wait_until
from shared.contracts.events import OrderPlaced, OrderShipped
from tests.e2e.conftest import Clients
from tests.kafka_helpers import publish, read_settled, read_topic

TODAY = date.today()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6].upper()}"


async def receive(
    clients: Clients, sku: str, quantity: int, *, expires_in: int | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": sku, "quantity": str(quantity), **extra}
    if expires_in is not None:
        body["expiry_date"] = (TODAY + timedelta(days=expires_in)).isoformat()
    response = await clients.receiving.post("/receipts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def place_order(
    clients: Clients,
    order_id: str,
    customer: str,
    sku: str,
    quantity: int,
    *,
    details: dict[str, Any] | None = None,
    source: str = "/oms/eu-1",
) -> None:
    """An order of one line from the OMS; `details` replace the customer's made-up name and
    email."""
    if details is None:
        details = {"name": f"Customer {customer}", "email": f"{customer.lower()}@example.com"}
    await publish(
        clients.bootstrap,
        OrderPlaced(
            order_id=order_id,
            customer={"customer_id": customer, **details},
            lines=[{"line_no": 1, "sku": sku, "quantity": quantity}],
        ),
        source=source,
    )


async def eventually(
    fetch: Callable[[], Awaitable[httpx.Response]],
    accept: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30,
) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def check() -> bool:
        response = await fetch()
        if response.status_code != 200:
            return False
        result.clear()
        result.update(response.json())
        return accept(result)

    await wait_until(check, timeout=timeout, interval=0.2, what="expected state")
    return result


async def allocated(clients: Clients, order_id: str) -> dict[str, Any]:
    return await eventually(
        lambda: clients.fulfillment.get(f"/orders/{order_id}"),
        lambda order: bool(order["allocations"]) and order["status"] == "open",
    )


async def ship(clients: Clients, order_id: str, **body: Any) -> dict[str, Any]:
    response = await clients.fulfillment.post("/shipments", json={"order_id": order_id, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def shipments_known_to_recall(clients: Clients, lot_id: str, lines: int) -> None:
    await eventually(
        lambda: clients.recall.get(f"/trace/lots/{lot_id}/forward"),
        lambda trace: trace["totals"]["shipment_lines"] >= lines,
    )


async def recall_messages(
    clients: Clients, recall_id: str, *, notices: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The recall's summary and its customer notices, as a notification service reads them."""
    found: list[dict[str, Any]] = []

    async def all_there() -> bool:
        records = await read_topic(clients.bootstrap, "recall-issued", timeout=10)
        found.clear()
        for record in records:
            event = json.loads(record.value)
            if event["data"]["recall_id"] == recall_id:
                found.append(event)
        kinds = [str(event["type"]) for event in found]
        return kinds.count("lottrace.recall-customer-notice.v1") >= notices

    await wait_until(all_there, timeout=30, what=f"{notices} notices of {recall_id}")
    # Then exactly what was published: the recall's notices done and its outbox drained, the
    # topic read up to its end offsets, so that a duplicate notice is counted.
    await eventually(
        lambda: clients.recall.get(f"/recalls/{recall_id}"), lambda r: r["notices_complete"]
    )
    recall_database = clients.platform.database_urls["recall"]
    found = [
        event
        for event in (
            json.loads(record.value)
            for record in await read_settled(clients.bootstrap, "recall-issued", recall_database)
        )
        if event["data"]["recall_id"] == recall_id
    ]
    summaries = [e["data"] for e in found if e["type"] == "lottrace.recall-issued.v1"]
    assert len(summaries) == 1
    assert found[0]["type"] == "lottrace.recall-issued.v1", "the summary comes first"
    return summaries[0], [
        e["data"] for e in found if e["type"] == "lottrace.recall-customer-notice.v1"
    ]


async def test_a_recall_notifies_exactly_the_customers_who_received_the_lot(
    clients: Clients,
) -> None:
    sku = unique("OJ")
    early = await receive(clients, sku, 10, expires_in=30, supplier={"supplier_id": "GROVE"})
    middle = await receive(clients, sku, 10, expires_in=60, supplier={"supplier_id": "GROVE"})
    late = await receive(clients, sku, 10, expires_in=90, supplier={"supplier_id": "GROVE"})

    # Orders arrive one after another (orders of different keys have no order on the wire).
    orders = {unique("SO"): customer for customer in ("ANN", "BEN", "CAT", "DAN")}
    for order_id, customer in orders.items():
        await place_order(clients, order_id, customer, sku, 6)
        await allocated(clients, order_id)
    for order_id in orders:
        await ship(clients, order_id)

    # FEFO: Ann 6 from early; Ben 4 early + 2 middle; Cat 6 middle; Dan 2 middle + 4 late.
    await shipments_known_to_recall(clients, middle["lot_id"], 3)
    complaint = await clients.recall.post(
        "/recalls",
        json={"reason": "off taste reported", "classification": "II",
              "scope": {"lot_codes": [middle["lot_code"]], "sku": sku}},
    )  # fmt: skip
    assert complaint.status_code == 202, complaint.text
    recall_id = complaint.json()["recall_id"]

    summary, notices = await recall_messages(clients, recall_id, notices=3)
    assert sorted(n["customer"]["customer_id"] for n in notices) == ["BEN", "CAT", "DAN"]
    assert summary["affected_customer_count"] == 3
    assert summary["shipped_quantity"] == "10"
    assert [lot["lot_code"] for lot in summary["affected_lots"]] == [middle["lot_code"]]
    for notice in notices:
        assert notice["late"] is False
        assert {s["lot_code"] for s in notice["shipments"]} == {middle["lot_code"]}
        assert notice["customer"]["email"].endswith("@example.com")
    assert sorted(
        (n["customer"]["customer_id"], s["quantity"]) for n in notices for s in n["shipments"]
    ) == [("BEN", "2"), ("CAT", "6"), ("DAN", "2")]

    lot = await eventually(
        lambda: clients.inventory.get(f"/lots/{middle['lot_id']}"),
        lambda lot: lot["status"] == "recalled",
    )
    assert lot["on_hand"] == "0"
    # The recall blocks neither of the other lots: the early one all shipped (Ann 6, Ben 4).
    untouched = {
        name: (await clients.inventory.get(f"/lots/{lot['lot_id']}")).json()["status"]
        for name, lot in (("early", early), ("late", late))
    }
    assert untouched == {"early": "depleted", "late": "available"}

    view = (await clients.recall.get(f"/recalls/{recall_id}")).json()
    assert view["affected_customer_count"] == 3
    csv_text = (await clients.recall.get(f"/recalls/{recall_id}/customers.csv")).text
    assert sorted(line.split(",")[0] for line in csv_text.strip().splitlines()[1:]) == [
        "BEN",
        "CAT",
        "DAN",
    ]


async def test_a_recall_of_an_ingredient_reaches_the_customers_of_the_juice_made_from_it(
    clients: Clients,
) -> None:
    oranges = unique("ORANGES")
    juice = unique("JUICE")
    recalled_oranges = await receive(
        clients, oranges, 100, uom="KG", supplier={"supplier_id": "FARM-A"}
    )
    other_oranges = await receive(
        clients, oranges, 100, uom="KG", supplier={"supplier_id": "FARM-B"}
    )
    made_from_recalled = await receive(
        clients,
        juice,
        5,
        expires_in=20,
        inputs=[{"lot_id": recalled_oranges["lot_id"], "quantity": "40", "uom": "KG"}],
    )
    made_from_other = await receive(
        clients,
        juice,
        5,
        expires_in=40,
        inputs=[{"lot_id": other_oranges["lot_id"], "quantity": "40", "uom": "KG"}],
    )
    eve, fay = unique("SO"), unique("SO")
    await place_order(clients, eve, "EVE", juice, 5)
    await allocated(clients, eve)
    await place_order(clients, fay, "FAY", juice, 5)
    assert {a["lot_id"] for a in (await allocated(clients, fay))["allocations"]} == {
        made_from_other["lot_id"]
    }
    await ship(clients, eve)
    await ship(clients, fay)
    await shipments_known_to_recall(clients, made_from_other["lot_id"], 1)
    await shipments_known_to_recall(clients, made_from_recalled["lot_id"], 1)

    response = await clients.recall.post(
        "/recalls",
        json={
            "reason": "pesticide residue",
            "classification": "I",
            "scope": {"lot_ids": [recalled_oranges["lot_id"]]},
        },
    )
    assert response.status_code == 202, response.text
    summary, notices = await recall_messages(clients, response.json()["recall_id"], notices=1)
    assert [n["customer"]["customer_id"] for n in notices] == ["EVE"]
    affected = {lot["lot_id"]: lot for lot in summary["affected_lots"]}
    assert set(affected) == {recalled_oranges["lot_id"], made_from_recalled["lot_id"]}
    assert affected[made_from_recalled["lot_id"]]["via_lot_id"] == recalled_oranges["lot_id"]

    backward = (
        await clients.recall.get(f"/trace/lots/{made_from_recalled['lot_id']}/backward")
    ).json()
    assert [lot["lot_id"] for lot in backward["inputs"]] == [recalled_oranges["lot_id"]]
    assert backward["inputs"][0]["supplier_id"] == "FARM-A"


async def test_an_allocated_order_of_a_recalled_lot_is_reallocated_and_never_shipped_from_it(
    clients: Clients,
) -> None:
    sku = unique("OJ")
    first = await receive(clients, sku, 5, expires_in=10)
    second = await receive(clients, sku, 5, expires_in=20)
    order_id = unique("SO")
    await place_order(clients, order_id, "GUS", sku, 5)
    before = await allocated(clients, order_id)
    assert {a["lot_id"] for a in before["allocations"]} == {first["lot_id"]}
    await eventually(
        lambda: clients.recall.get(f"/trace/lots/{first['lot_id']}/forward"), lambda t: True
    )

    response = await clients.recall.post(
        "/recalls", json={"reason": "seal defect", "scope": {"lot_ids": [first["lot_id"]]}}
    )
    assert response.status_code == 202, response.text

    after = await eventually(
        lambda: clients.fulfillment.get(f"/orders/{order_id}"),
        lambda order: (
            order["allocation_revision"] > before["allocation_revision"]
            and {a["lot_id"] for a in order["allocations"]} == {second["lot_id"]}
        ),
    )
    shipment = await ship(clients, order_id)
    assert {line["lot_id"] for line in shipment["lines"]} == {second["lot_id"]}
    assert after["backordered"] == []

    # With no other stock left, a new order of the SKU is backordered, never shipped from the
    # recalled lot.
    starved = unique("SO")
    await place_order(clients, starved, "HAL", sku, 1)
    order = await eventually(
        lambda: clients.fulfillment.get(f"/orders/{starved}"),
        lambda order: order["allocation_revision"] >= 1,
    )
    assert order["allocations"] == []
    assert order["backordered"][0]["quantity"] == "1"
    refused = await clients.fulfillment.post("/shipments", json={"order_id": starved})
    assert refused.status_code == 409
    assert refused.json()["error"] == "nothing_to_ship"


async def test_a_shipment_that_becomes_known_after_the_recall_gets_a_late_notice(
    clients: Clients,
) -> None:
    sku = unique("OJ")
    lot = await receive(clients, sku, 10, expires_in=30)
    order_id = unique("SO")
    await place_order(clients, order_id, "IVY", sku, 4)
    await allocated(clients, order_id)
    await ship(clients, order_id)
    await shipments_known_to_recall(clients, lot["lot_id"], 1)
    response = await clients.recall.post(
        "/recalls", json={"reason": "mislabelled allergen", "scope": {"lot_ids": [lot["lot_id"]]}}
    )
    recall_id = response.json()["recall_id"]
    await recall_messages(clients, recall_id, notices=1)

    # A shipment made by another warehouse before it heard of the recall arrives now.
    in_flight = OrderShipped(
        shipment_id=unique("SH"),
        order_id=unique("SO"),
        customer={"customer_id": "JOE", "name": "Joe"},
        shipped_at=datetime.now(UTC) - timedelta(hours=1),
        lines=[
            {
                "line_no": 1,
                "sku": sku,
                "lot_id": lot["lot_id"],
                "lot_code": lot["lot_code"],
                "quantity": "2",
            }
        ],
    )
    await publish(clients.bootstrap, in_flight, source="/wms/eu-2")
    _, notices = await recall_messages(clients, recall_id, notices=2)
    late = [n for n in notices if n["late"]]
    assert [n["customer"]["customer_id"] for n in late] == ["JOE"]
    assert late[0]["shipments"][0]["shipment_id"] == in_flight.shipment_id
    view = await eventually(
        lambda: clients.recall.get(f"/recalls/{recall_id}"), lambda r: r["late_notices"] == 1
    )
    assert {c["customer_id"] for c in view["customers"]} == {"IVY", "JOE"}


async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(clients: Clients) -> None:
    unknown_lot = str(uuid.uuid4())
    bad_check_digit = "(01)09501101530004(10)ABC"
    cases: list[tuple[httpx.AsyncClient, str, str, dict[str, Any], int, str]] = [
        (clients.receiving, "POST", "/receipts", {"json": {"sku": "X", "quantity": "-1"}},
         422, "invalid_request"),
        (clients.receiving, "POST", "/receipts",
         {"content": b"{oops", "headers": {"content-type": "application/json"}},
         400, "malformed_json"),
        (clients.receiving, "POST", "/receipts",
         {"json": {"sku": "X", "quantity": "1",
                   "inputs": [{"lot_id": unknown_lot, "quantity": "1"}]}},
         422, "unknown_input_lot"),
        (clients.receiving, "GET", f"/lots/{unknown_lot}", {}, 404, "lot_not_found"),
        (clients.inventory, "GET", "/lots/not-a-uuid", {}, 422, "invalid_request"),
        (clients.inventory, "POST", f"/lots/{unknown_lot}/hold", {"json": {"reason": "smell"}},
         404, "lot_not_found"),
        (clients.fulfillment, "POST", "/shipments", {"json": {"order_id": unique("SO")}},
         404, "order_not_found"),
        (clients.fulfillment, "POST", "/shipments",
         {"json": {"order_id": "SO-1", "scans": [bad_check_digit]}}, 422, "invalid_barcode"),
        (clients.recall, "POST", "/recalls", {"json": {"reason": "x", "scope": {}}},
         422, "invalid_request"),
        (clients.recall, "POST", "/recalls",
         {"json": {"reason": "x", "scope": {"lot_codes": ["NO-SUCH-LOT"]}}},
         404, "no_lots_in_scope"),
    ]  # fmt: skip
    for client, method, path, options, status, error in cases:
        response = await client.request(method, path, **options)
        assert response.status_code == status, (path, response.text)
        body = response.json()
        assert body["error"] == error, body
        assert body["detail"]
    lots = (await clients.receiving.get("/lots", params={"sku": "X"})).json()
    assert lots == []
