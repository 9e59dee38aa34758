"""Traceability reports end to end: oranges are bought, juice is made from them and shipped to
a customer; the recall service then answers FDA's FSMA 204 request (CSV and XLSX) and
exports the juice lot's EPCIS 2.0 document."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

import openpyxl

from lottrace.infra import wait_until
from services.recall.reports import EPCIS_CONTEXT, FSMA_COLUMNS
from shared.tables import XLSX_MEDIA_TYPE
from tests.e2e.conftest import Clients
from tests.e2e.test_orange_juice import allocated, place_order, receive, ship, unique

ORANGES_GTIN = "09501101530003"


def utc_today() -> date:
    return datetime.now(UTC).date()


async def fsma_csv_rows(clients: Clients, **params: Any) -> list[dict[str, str]]:
    response = await clients.recall.get("/reports/fsma204", params={"format": "csv", **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


KIMS_DELI = {
    "name": "Kim's Deli",
    "phone": "+1 555 0100",
    "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
}


async def test_fsma_204_spreadsheet_and_epcis_document_of_a_juice_lot(clients: Clients) -> None:
    first_day = utc_today()
    oranges_sku, juice_sku = unique("ORANGES"), unique("JUICE")
    oranges_code = unique("GROVE-LOT")
    purchase_order = unique("PO")
    oranges = await receive(
        clients,
        oranges_sku,
        100,
        expires_in=30,
        uom="KG",
        gtin=ORANGES_GTIN,
        lot_code=oranges_code,
        supplier_lot_code=oranges_code,
        supplier={"supplier_id": "GROVE", "name": "Grove Farms"},
        purchase_order=purchase_order,
        location="DOCK-1",
    )
    juice = await receive(
        clients,
        juice_sku,
        10,
        expires_in=20,
        location="PLANT",
        inputs=[{"lot_id": oranges["lot_id"], "quantity": "40", "uom": "KG"}],
    )
    order_id, customer_id = unique("SO"), unique("KIM")
    await place_order(
        clients, order_id, customer_id, juice_sku, 4, details=KIMS_DELI, source="/oms/us-1"
    )
    await allocated(clients, order_id)
    shipment = await ship(clients, order_id)
    oranges_tlc = f"(01){ORANGES_GTIN}(10){oranges_code}"
    juice_code = juice["lot_code"]

    window = {"from": first_day.isoformat(), "to": utc_today().isoformat()}
    ours: list[dict[str, str]] = []

    async def all_events_known() -> bool:
        rows = await fsma_csv_rows(clients, **window)
        ours[:] = [row for row in rows if row["Lot Code"] in {oranges_code, juice_code}]
        return sorted(row["Event Type"] for row in ours) == [
            "Receiving",
            "Shipping",
            "Transformation",
        ]

    await wait_until(all_events_known, timeout=30, interval=0.2, what="the lots' three events")

    by_type = {row["Event Type"]: row for row in ours}
    receiving = by_type["Receiving"]
    assert receiving["Traceability Lot Code (TLC)"] == oranges_tlc
    assert receiving["GTIN"] == ORANGES_GTIN
    assert receiving["Product Description"] == oranges_sku
    assert (receiving["Quantity"], receiving["Unit of Measure"]) == ("100", "KG")
    assert receiving["Event Date"] == oranges["received_at"][:10]
    assert receiving["Event Location (Receive / Transform / Ship-From)"] == "DOCK-1"
    assert receiving["Immediate Previous Source"] == "Grove Farms"
    assert receiving["TLC Source"] == "Grove Farms"
    assert receiving["TLC Source Reference"] == "GROVE"
    assert receiving["Reference Document Type"] == "Purchase Order"
    assert receiving["Reference Document Number"] == purchase_order
    assert receiving["Date Code Type"] == "Expiry Date"
    assert receiving["Date Code"] == oranges["expiry_date"]

    transformation = by_type["Transformation"]
    assert transformation["Traceability Lot Code (TLC)"] == juice_code
    assert transformation["Product Description"] == juice_sku
    assert (transformation["Quantity"], transformation["Unit of Measure"]) == ("10", "EA")
    assert transformation["Input TLC"] == oranges_tlc
    assert transformation["Input Product Description"] == oranges_sku
    assert (transformation["Input Quantity"], transformation["Input Unit of Measure"]) == (
        "40",
        "KG",
    )
    assert transformation["TLC Source"] == "Own facility (PLANT)"
    assert transformation["Reference Document Type"] == "Production Receipt"
    assert transformation["Reference Document Number"] == juice["receipt_id"]

    shipping = by_type["Shipping"]
    assert shipping["Traceability Lot Code (TLC)"] == juice_code
    assert (shipping["Quantity"], shipping["Unit of Measure"]) == ("4", "EA")
    assert shipping["Ship-To (Immediate Subsequent Recipient)"] == "Kim's Deli"
    assert shipping["Ship-To ID"] == customer_id
    assert shipping["Ship-To Address"] == "1 Main St, Springfield, US"
    assert shipping["Ship-To Phone"] == "+1 555 0100"
    assert shipping["Event Location (Receive / Transform / Ship-From)"] == "PLANT"
    assert shipping["Reference Document Number"] == shipment["shipment_id"]
    assert shipping["Order Number"] == order_id

    # The same records as XLSX.
    response = await clients.recall.get("/reports/fsma204", params={**window, "format": "xlsx"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    assert "attachment; filename=" in response.headers["content-disposition"]
    assert response.headers["content-disposition"].endswith('.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(response.content))["FSMA 204"]
    header, *data = list(sheet.iter_rows(values_only=True))
    assert list(header) == [column.value for column in FSMA_COLUMNS]
    from_sheet = {
        (row[0], row[1], row[FSMA_COLUMNS.index("Reference Document Number")])
        for row in data
        if row[2] in {oranges_code, juice_code}
    }
    assert from_sheet == {
        (row["Event Type"], row["Traceability Lot Code (TLC)"], row["Reference Document Number"])
        for row in ours
    }

    # Filters: a lot code selects its own events and the transformations that consumed it.
    by_oranges = await fsma_csv_rows(clients, lot_code=oranges_code)
    assert sorted(row["Event Type"] for row in by_oranges) == ["Receiving", "Transformation"]
    by_juice = await fsma_csv_rows(clients, lot_code=juice_code, sku="", **window)
    assert sorted(row["Event Type"] for row in by_juice) == ["Shipping", "Transformation"]
    by_sku = await fsma_csv_rows(clients, sku=juice_sku)
    assert {row["Lot Code"] for row in by_sku} == {juice_code}
    before_it_all = await fsma_csv_rows(clients, to="2000-01-01", lot_code=juice_code)
    assert before_it_all == []

    backwards = await clients.recall.get(
        "/reports/fsma204", params={"from": "2026-02-02", "to": "2026-02-01"}
    )
    assert backwards.status_code == 422
    assert backwards.json()["error"] == "invalid_date_range"

    # EPCIS: the juice was made from the oranges, then shipped to Kim.
    response = await clients.recall.get("/reports/epcis", params={"lot_id": juice["lot_id"]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    assert document["@context"] == EPCIS_CONTEXT
    assert (document["type"], document["schemaVersion"]) == ("EPCISDocument", "2.0")
    made, shipped = document["epcisBody"]["eventList"]
    assert (made["type"], made["bizStep"]) == ("TransformationEvent", "commissioning")
    assert made["inputQuantityList"] == [
        {
            "epcClass": f"https://id.gs1.org/01/{ORANGES_GTIN}/10/{oranges_code}",
            "quantity": 40,
            "uom": "KGM",
        }
    ]
    assert made["outputQuantityList"] == [
        {"epcClass": f"urn:lottrace:class:{juice_sku}:{juice_code}", "quantity": 10, "uom": "EA"}
    ]
    assert made["ilmd"]["cbvmda:itemExpirationDate"] == juice["expiry_date"]
    assert (shipped["type"], shipped["action"], shipped["bizStep"], shipped["disposition"]) == (
        "ObjectEvent",
        "OBSERVE",
        "shipping",
        "in_transit",
    )
    assert shipped["quantityList"][0]["quantity"] == 4
    assert shipped["destinationList"] == [
        {"type": "owning_party", "destination": f"urn:lottrace:party:customer:{customer_id}"}
    ]
    again = (await clients.recall.get("/reports/epcis", params={"lot_id": juice["lot_id"]})).json()
    assert [e["eventID"] for e in again["epcisBody"]["eventList"]] == [
        made["eventID"],
        shipped["eventID"],
    ]

    # The oranges' document: received (ADD, with PO and expiry), then made into juice.
    oranges_document = (
        await clients.recall.get("/reports/epcis", params={"lot_id": oranges["lot_id"]})
    ).json()
    received, consumed = oranges_document["epcisBody"]["eventList"]
    assert (received["action"], received["bizStep"]) == ("ADD", "receiving")
    assert received["bizTransactionList"] == [
        {"type": "po", "bizTransaction": f"urn:lottrace:po:{purchase_order}"}
    ]
    assert received["ilmd"]["cbvmda:itemExpirationDate"] == oranges["expiry_date"]
    assert consumed["eventID"] == made["eventID"]

    unknown = await clients.recall.get("/reports/epcis", params={"lot_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "lot_not_found"
