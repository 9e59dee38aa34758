"""Traceability reports from the recall projection: the FDA FSMA 204 electronic sortable
spreadsheet (rows, CSV, XLSX) and a lot's GS1 EPCIS 2.0 JSON-LD document.

Pure: the functions take rows already read from the database (plain mappings) and return rows,
text, bytes or JSON-ready dicts. Filtering by date, SKU and lot code happens in SQL.

Event dates and times are given in UTC, the zone the projection stores timestamps in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeAlias
from urllib.parse import quote
from uuid import NAMESPACE_URL, uuid5

from shared.contracts.events import MOVE, RETURN_TO_VENDOR
from shared.tables import Table, as_csv, as_xlsx, csv_text

# ------------------------------------------------------------------ FSMA 204 spreadsheet


class FsmaColumn(StrEnum):
    """The spreadsheet's columns, in their fixed order (the industry template's key data
    elements, one row per critical tracking event and, for transformations, per input lot)."""

    EVENT_TYPE = "Event Type"
    TLC = "Traceability Lot Code (TLC)"
    LOT_CODE = "Lot Code"
    GTIN = "GTIN"
    PRODUCT_DESCRIPTION = "Product Description"
    QUANTITY = "Quantity"
    UNIT_OF_MEASURE = "Unit of Measure"
    EVENT_DATE = "Event Date"
    EVENT_TIME = "Event Time (UTC)"
    EVENT_LOCATION = "Event Location (Receive / Transform / Ship-From)"
    PREVIOUS_SOURCE = "Immediate Previous Source"
    PREVIOUS_SOURCE_ID = "Immediate Previous Source ID"
    RECIPIENT = "Ship-To (Immediate Subsequent Recipient)"
    RECIPIENT_ID = "Ship-To ID"
    RECIPIENT_ADDRESS = "Ship-To Address"
    RECIPIENT_PHONE = "Ship-To Phone"
    TLC_SOURCE = "TLC Source"
    TLC_SOURCE_REFERENCE = "TLC Source Reference"
    SUPPLIER_LOT_CODE = "Supplier Lot Code"
    REFERENCE_DOCUMENT_TYPE = "Reference Document Type"
    REFERENCE_DOCUMENT_NUMBER = "Reference Document Number"
    ORDER_NUMBER = "Order Number"
    INPUT_TLC = "Input TLC"
    INPUT_LOT_CODE = "Input Lot Code"
    INPUT_PRODUCT_DESCRIPTION = "Input Product Description"
    INPUT_QUANTITY = "Input Quantity"
    INPUT_UNIT_OF_MEASURE = "Input Unit of Measure"
    DATE_CODE = "Date Code"
    DATE_CODE_TYPE = "Date Code Type"


FSMA_COLUMNS: tuple[FsmaColumn, ...] = tuple(FsmaColumn)
FSMA_HEADER: tuple[str, ...] = tuple(column.value for column in FSMA_COLUMNS)


class EventType(StrEnum):
    RECEIVING = "Receiving"
    TRANSFORMATION = "Transformation"
    SHIPPING = "Shipping"


# Within one day and lot, a lot is received or made before it is shipped.
_EVENT_ORDER = {EventType.RECEIVING: 0, EventType.TRANSFORMATION: 1, EventType.SHIPPING: 2}

OWN_FACILITY = "Own facility"
XLSX_SHEET_NAME = "FSMA 204"

Cell: TypeAlias = str | Decimal | date | time | None
FsmaRow: TypeAlias = dict[FsmaColumn, Cell]


def traceability_lot_code(gtin: str | None, lot_code: str) -> str:
    """GTIN + batch in GS1 element-string form when the GTIN is known, else the lot code."""
    if gtin:
        return f"(01){gtin.zfill(14)}(10){lot_code}"
    return lot_code


def date_code(lot: Mapping[str, Any]) -> tuple[date | None, str | None]:
    """The date printed on the lot that matters most for recalls: expiry, then best-before,
    then production date."""
    for field, label in (
        ("expiry_date", "Expiry Date"),
        ("best_before_date", "Best Before Date"),
        ("production_date", "Production Date"),
    ):
        if lot.get(field) is not None:
            return lot[field], label
    return None, None


def tlc_source(lot: Mapping[str, Any]) -> tuple[str, str | None]:
    """Who assigned the lot code, and a reference to them.

    A produced lot's code is ours. A purchased lot's code is the supplier's, unless the
    supplier's own lot code is known and differs (we gave the lot a code of our own) or no
    supplier is known (the code entered the records here).
    """
    supplier_id = lot.get("supplier_id")
    supplier_lot_code = lot.get("supplier_lot_code")
    assigned_by_supplier = (
        not lot.get("produced")
        and supplier_id is not None
        and supplier_lot_code in (None, lot["lot_code"])
    )
    if assigned_by_supplier:
        return str(lot.get("supplier_name") or supplier_id), str(supplier_id)
    location = lot.get("lot_location") or lot.get("location")
    return (f"{OWN_FACILITY} ({location})" if location else OWN_FACILITY), location


CUSTOMER_CSV_COLUMNS = (
    "customer_id", "name", "email", "phone", "address", "shipment_id", "order_id",
    "shipped_at", "sku", "lot_id", "lot_code", "quantity", "uom", "late",
)  # fmt: skip


def customer_csv_row(line: Mapping[str, Any]) -> list[str]:
    """One shipment line of an affected customer in `customers.csv`, every cell formula-safe."""
    return [
        csv_text(value)
        for value in (
            line["customer_id"], line["name"], line["email"], line["phone"],
            format_address(line["address"]), line["shipment_id"], line["order_id"],
            line["shipped_at"].isoformat(), line["sku"], str(line["lot_id"]), line["lot_code"],
            line["quantity"], line["uom"], "yes" if line["late"] else "no",
        )
    ]  # fmt: skip


def format_address(address: Mapping[str, Any] | None) -> str | None:
    if not address:
        return None
    parts = [
        address.get(part) for part in ("line1", "line2", "city", "region", "postal_code", "country")
    ]
    return ", ".join(str(part) for part in parts if part) or None


def _utc(moment: datetime) -> tuple[date, time]:
    utc = moment.astimezone(UTC)
    return utc.date(), utc.time().replace(microsecond=0)


def event_date(moment: datetime) -> date:
    """The sheet's event date of a moment: its UTC date, the first key the sheet sorts by."""
    return _utc(moment)[0]


def _lot_cells(lot: Mapping[str, Any]) -> FsmaRow:
    """Cells describing the lot an event is about (the produced lot for transformations)."""
    source, source_reference = tlc_source(lot)
    code, code_type = date_code(lot)
    return {
        FsmaColumn.TLC: traceability_lot_code(lot.get("gtin"), lot["lot_code"]),
        FsmaColumn.LOT_CODE: lot["lot_code"],
        FsmaColumn.GTIN: lot.get("gtin"),
        FsmaColumn.PRODUCT_DESCRIPTION: lot["sku"],
        FsmaColumn.QUANTITY: Decimal(lot["quantity"]),
        FsmaColumn.UNIT_OF_MEASURE: lot["uom"],
        FsmaColumn.TLC_SOURCE: source,
        FsmaColumn.TLC_SOURCE_REFERENCE: source_reference,
        FsmaColumn.SUPPLIER_LOT_CODE: lot.get("supplier_lot_code"),
        FsmaColumn.DATE_CODE: code,
        FsmaColumn.DATE_CODE_TYPE: code_type,
    }


def receipt_rows(receipt: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> list[FsmaRow]:
    """A purchase is one Receiving row; a production receipt is one Transformation row per
    input lot, each naming the input and the produced lot."""
    event_date, event_time = _utc(receipt["received_at"])
    common: FsmaRow = {
        **_lot_cells(receipt),
        FsmaColumn.EVENT_DATE: event_date,
        FsmaColumn.EVENT_TIME: event_time,
        FsmaColumn.EVENT_LOCATION: receipt.get("location"),
    }
    if not inputs:
        purchase_order = receipt.get("purchase_order")
        return [
            {
                **common,
                FsmaColumn.EVENT_TYPE: EventType.RECEIVING.value,
                FsmaColumn.PREVIOUS_SOURCE: receipt.get("supplier_name")
                or receipt.get("supplier_id"),
                FsmaColumn.PREVIOUS_SOURCE_ID: receipt.get("supplier_id"),
                FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Purchase Order"
                if purchase_order
                else "Receipt",
                FsmaColumn.REFERENCE_DOCUMENT_NUMBER: purchase_order or receipt["receipt_id"],
                FsmaColumn.ORDER_NUMBER: purchase_order,
            }
        ]
    return [
        {
            **common,
            FsmaColumn.EVENT_TYPE: EventType.TRANSFORMATION.value,
            FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Production Receipt",
            FsmaColumn.REFERENCE_DOCUMENT_NUMBER: receipt["receipt_id"],
            FsmaColumn.INPUT_TLC: traceability_lot_code(
                item.get("input_gtin"), item["input_lot_code"]
            ),
            FsmaColumn.INPUT_LOT_CODE: item["input_lot_code"],
            FsmaColumn.INPUT_PRODUCT_DESCRIPTION: item["input_sku"],
            FsmaColumn.INPUT_QUANTITY: Decimal(item["quantity"]),
            FsmaColumn.INPUT_UNIT_OF_MEASURE: item["uom"],
        }
        for item in inputs
    ]


def shipment_row(line: Mapping[str, Any]) -> FsmaRow:
    """One Shipping row per shipment line: our ship-from location to the customer."""
    event_date, event_time = _utc(line["shipped_at"])
    return {
        **_lot_cells(line),
        FsmaColumn.EVENT_TYPE: EventType.SHIPPING.value,
        FsmaColumn.EVENT_DATE: event_date,
        FsmaColumn.EVENT_TIME: event_time,
        FsmaColumn.EVENT_LOCATION: line.get("lot_location"),
        FsmaColumn.RECIPIENT: line.get("customer_name") or line["customer_id"],
        FsmaColumn.RECIPIENT_ID: line["customer_id"],
        FsmaColumn.RECIPIENT_ADDRESS: format_address(line.get("customer_address")),
        FsmaColumn.RECIPIENT_PHONE: line.get("customer_phone"),
        FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Shipment",
        FsmaColumn.REFERENCE_DOCUMENT_NUMBER: line["shipment_id"],
        FsmaColumn.ORDER_NUMBER: line["order_id"],
    }


def vendor_return_row(movement: Mapping[str, Any]) -> FsmaRow:
    """A return to vendor is a Shipping row: from the location it left, to the supplier, under
    the supplier's RMA."""
    event_date, event_time = _utc(movement["moved_at"])
    return {
        **_lot_cells(movement),
        FsmaColumn.EVENT_TYPE: EventType.SHIPPING.value,
        FsmaColumn.EVENT_DATE: event_date,
        FsmaColumn.EVENT_TIME: event_time,
        FsmaColumn.EVENT_LOCATION: movement["from_location"],
        FsmaColumn.RECIPIENT: movement.get("supplier_name") or movement.get("supplier_id"),
        FsmaColumn.RECIPIENT_ID: movement.get("supplier_id"),
        FsmaColumn.REFERENCE_DOCUMENT_TYPE: "Return Authorization (RMA)",
        FsmaColumn.REFERENCE_DOCUMENT_NUMBER: movement["rma"],
    }


# The movements that are FSMA 204 critical tracking events: a return to the supplier is a
# shipment; a move between our own locations is none (it is only an EPCIS observation).
_FSMA_MOVEMENT_ROWS = {RETURN_TO_VENDOR: vendor_return_row}
FSMA_MOVEMENT_KINDS: tuple[str, ...] = tuple(_FSMA_MOVEMENT_ROWS)


def _sort_key(row: FsmaRow) -> tuple[Any, ...]:
    def text(column: FsmaColumn) -> str:
        value = row.get(column)
        return "" if value is None else str(value)

    return (
        row[FsmaColumn.EVENT_DATE],
        text(FsmaColumn.TLC),
        row[FsmaColumn.EVENT_TIME],
        _EVENT_ORDER[EventType(text(FsmaColumn.EVENT_TYPE))],
        text(FsmaColumn.REFERENCE_DOCUMENT_NUMBER),
        text(FsmaColumn.INPUT_TLC),
    )


def fsma_rows(
    receipts: Iterable[Mapping[str, Any]],
    inputs: Iterable[Mapping[str, Any]],
    shipments: Iterable[Mapping[str, Any]],
    movements: Iterable[Mapping[str, Any]] = (),
) -> list[FsmaRow]:
    """Every critical tracking event as spreadsheet rows, sorted by event date, then TLC.

    `receipts` carry the receipt and its lot's attributes (`produced` is true for a lot made
    from inputs); `inputs` are the input lots of those receipts, by `receipt_id`;
    `shipments` carry the shipment line, its lot's attributes and the customer;
    `movements` the lot movements with their lot's attributes, of which those of
    `FSMA_MOVEMENT_KINDS` (returns to vendor) are events.
    """
    rows = receipt_events(receipts, inputs)
    rows += [shipment_row(line) for line in shipments]
    rows += [row for movement in movements if (row := movement_row(movement)) is not None]
    return sorted(rows, key=_sort_key)


def receipt_events(
    receipts: Iterable[Mapping[str, Any]], inputs: Iterable[Mapping[str, Any]]
) -> list[FsmaRow]:
    """The rows of these receipts, each with its `inputs` (matched by `receipt_id`)."""
    inputs_by_receipt: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in inputs:
        inputs_by_receipt[item["receipt_id"]].append(item)
    rows: list[FsmaRow] = []
    for receipt in receipts:
        rows += receipt_rows(receipt, inputs_by_receipt.get(receipt["receipt_id"], []))
    return rows


def movement_row(movement: Mapping[str, Any]) -> FsmaRow | None:
    """The row of a movement that is a critical tracking event (a return to vendor), or None."""
    lay_out = _FSMA_MOVEMENT_ROWS.get(movement["kind"])
    return None if lay_out is None else lay_out(movement)


@dataclass(frozen=True, slots=True)
class SheetLine:
    """A row as the sheet's cells, with the key the sheet sorts it by: smaller than the row's
    mapping, for an export that holds a day of rows."""

    key: tuple[Any, ...]
    cells: tuple[Cell, ...]

    @classmethod
    def of(cls, row: FsmaRow) -> SheetLine:
        return cls(_sort_key(row), _cells(row))


def fsma_table(rows: Iterable[FsmaRow]) -> Table:
    """The sheet: a column per FSMA 204 field, in the FDA's order; dates and times as values."""
    return Table(XLSX_SHEET_NAME, FSMA_HEADER, tuple(_cells(row) for row in rows))


def _cells(row: FsmaRow) -> tuple[Cell, ...]:
    """The row's cells, one per column of `FSMA_HEADER`."""
    return tuple(row.get(column) for column in FSMA_COLUMNS)


def fsma_csv(rows: Iterable[FsmaRow]) -> str:
    """RFC 4180 CSV: a header row, CRLF line ends, fields quoted only when they must be, and
    no text a spreadsheet would run as a formula."""
    return as_csv(fsma_table(rows)).decode("utf-8")


def fsma_xlsx(rows: Sequence[FsmaRow]) -> bytes:
    """One sheet: bold frozen header with an autofilter, dates and times as Excel values,
    quantities as numbers, and every text written as text (never read as a formula)."""
    return as_xlsx([fsma_table(rows)])


# ------------------------------------------------------------------ EPCIS 2.0

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EPCIS_MEDIA_TYPE = "application/ld+json"
# Event ids are UUIDv5 of our own ids under this namespace: re-exporting gives the same ids.
EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "urn:lottrace:epcis:event")
_PRIVATE_URN = "urn:lottrace"

# UN/CEFACT Recommendation 20 codes for the units people type; EPCIS wants Rec. 20.
_REC20_UNITS = {
    "KG": "KGM",
    "G": "GRM",
    "MG": "MGM",
    "T": "TNE",
    "L": "LTR",
    "ML": "MLT",
    "LB": "LBR",
    "OZ": "ONZ",
    "M": "MTR",
    "PC": "H87",
    "PCS": "H87",
}


def _component(value: Any) -> str:
    return quote(str(value), safe="")


def private_urn(kind: str, *parts: Any) -> str:
    return ":".join([_PRIVATE_URN, kind, *(_component(part) for part in parts)])


def epc_class(sku: str, lot_code: str, gtin: str | None) -> str:
    """The lot as an EPC class: GS1 Digital Link (GTIN + batch) when the GTIN is known, else a
    private URN naming our SKU and lot code."""
    if gtin and gtin.isdigit():
        return f"https://id.gs1.org/01/{gtin.zfill(14)}/10/{_component(lot_code)}"
    return private_urn("class", sku, lot_code)


def rec20_unit(uom: str) -> str:
    return _REC20_UNITS.get(uom.upper(), uom.upper())


def _json_number(value: Any) -> int | float:
    amount = Decimal(value)
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def quantity_element(
    sku: str, lot_code: str, gtin: str | None, quantity: Any, uom: str
) -> dict[str, Any]:
    return {
        "epcClass": epc_class(sku, lot_code, gtin),
        "quantity": _json_number(quantity),
        "uom": rec20_unit(uom),
    }


def event_id(kind: str, *ids: Any) -> str:
    return f"urn:uuid:{uuid5(EVENT_ID_NAMESPACE, ':'.join([kind, *map(str, ids)]))}"


def _event_time(moment: datetime) -> dict[str, str]:
    return {
        "eventTime": moment.astimezone(UTC).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+00:00",
    }


def lot_master_data(lot: Mapping[str, Any]) -> dict[str, str]:
    """ILMD: the lot number and its dates, in the CBV master data vocabulary."""
    ilmd = {"cbvmda:lotNumber": str(lot["lot_code"])}
    for field, term in (
        ("expiry_date", "cbvmda:itemExpirationDate"),
        ("best_before_date", "cbvmda:bestBeforeDate"),
        ("production_date", "cbvmda:productionDate"),
    ):
        if lot.get(field) is not None:
            ilmd[term] = lot[field].isoformat()
    return ilmd


def _location(location: Any) -> str:
    return private_urn("location", location)


def _lot_quantity(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The quantity element of the lot a receipt received or produced."""
    sku, lot_code, uom = receipt["sku"], receipt["lot_code"], receipt["uom"]
    return quantity_element(sku, lot_code, receipt.get("gtin"), receipt["quantity"], uom)


def _at_our_location(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """readPoint and bizLocation of an event at one of our locations (none without one)."""
    if not receipt.get("location"):
        return {}
    return {
        "readPoint": {"id": _location(receipt["location"])},
        "bizLocation": {"id": _location(receipt["location"])},
    }


def receiving_event(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """A purchase received: ObjectEvent ADD, the lot enters our custody with its master data."""
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": event_id("receiving", receipt["receipt_id"]),
        **_event_time(receipt["received_at"]),
        "quantityList": [_lot_quantity(receipt)],
        "action": "ADD",
        "bizStep": "receiving",
        "disposition": "in_progress",
    }
    event.update(_at_our_location(receipt))
    if receipt.get("purchase_order"):
        event["bizTransactionList"] = [
            {"type": "po", "bizTransaction": private_urn("po", receipt["purchase_order"])}
        ]
    if receipt.get("supplier_id"):
        event["sourceList"] = [
            {
                "type": "owning_party",
                "source": private_urn("party", "supplier", receipt["supplier_id"]),
            }
        ]
    if receipt.get("location"):
        event["destinationList"] = [
            {"type": "location", "destination": _location(receipt["location"])}
        ]
    event["ilmd"] = lot_master_data(receipt)
    return event


def transformation_event(
    receipt: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A lot produced from input lots: the new lot is commissioned, the inputs consumed."""
    event: dict[str, Any] = {
        "type": "TransformationEvent",
        "eventID": event_id("transformation", receipt["receipt_id"]),
        **_event_time(receipt["received_at"]),
        "inputQuantityList": [
            quantity_element(
                item["input_sku"],
                item["input_lot_code"],
                item.get("input_gtin"),
                item["quantity"],
                item["uom"],
            )
            for item in inputs
        ],
        "outputQuantityList": [_lot_quantity(receipt)],
        "bizStep": "commissioning",
        "disposition": "active",
    }
    event.update(_at_our_location(receipt))
    event["ilmd"] = lot_master_data(receipt)
    return event


def shipping_event(line: Mapping[str, Any]) -> dict[str, Any]:
    """A shipment line leaving us for the customer: ObjectEvent OBSERVE, in transit. No
    bizLocation: the goods are on their way, no longer at a location of ours."""
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": event_id("shipping", line["shipment_id"], line["line_no"], line["lot_id"]),
        **_event_time(line["shipped_at"]),
        "quantityList": [
            quantity_element(
                line["sku"], line["lot_code"], line.get("gtin"), line["quantity"], line["uom"]
            )
        ],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "disposition": "in_transit",
    }
    if line.get("lot_location"):
        event["readPoint"] = {"id": _location(line["lot_location"])}
    event["bizTransactionList"] = [
        {"type": "desadv", "bizTransaction": private_urn("shipment", line["shipment_id"])},
        {"type": "po", "bizTransaction": private_urn("order", line["order_id"])},
    ]
    if line.get("lot_location"):
        event["sourceList"] = [{"type": "location", "source": _location(line["lot_location"])}]
    event["destinationList"] = [
        {
            "type": "owning_party",
            "destination": private_urn("party", "customer", line["customer_id"]),
        }
    ]
    return event


def _movement_quantity(movement: Mapping[str, Any]) -> dict[str, Any]:
    sku, lot_code, uom = movement["sku"], movement["lot_code"], movement["uom"]
    return quantity_element(sku, lot_code, movement.get("gtin"), movement["quantity"], uom)


def _observed_movement(
    movement: Mapping[str, Any], *, biz_step: str, disposition: str
) -> dict[str, Any]:
    """What the ObjectEvent of every kind of movement holds: its units, observed (not added)."""
    return {
        "type": "ObjectEvent",
        "eventID": event_id(movement["kind"], movement["movement_id"]),
        **_event_time(movement["moved_at"]),
        "quantityList": [_movement_quantity(movement)],
        "action": "OBSERVE",
        "bizStep": biz_step,
        "disposition": disposition,
    }


def move_event(movement: Mapping[str, Any]) -> dict[str, Any]:
    """Units moved between two of our locations: ObjectEvent OBSERVE, bizStep `storing` (CBV:
    moving an object into and out of storage within a location), seen where they went."""
    source, target = _location(movement["from_location"]), _location(movement["to_location"])
    return {
        **_observed_movement(movement, biz_step="storing", disposition="in_progress"),
        "readPoint": {"id": target},
        "bizLocation": {"id": target},
        "sourceList": [{"type": "location", "source": source}],
        "destinationList": [{"type": "location", "destination": target}],
    }


def vendor_return_event(movement: Mapping[str, Any]) -> dict[str, Any]:
    """Units sent back to the supplier: ObjectEvent OBSERVE, `shipping`, disposition
    `returned`, under the supplier's RMA, the supplier as destination. No bizLocation: the
    goods leave our custody."""
    source = _location(movement["from_location"])
    event = {
        **_observed_movement(movement, biz_step="shipping", disposition="returned"),
        "readPoint": {"id": source},
        "bizTransactionList": [
            {"type": "rma", "bizTransaction": private_urn("rma", movement["rma"])}
        ],
        "sourceList": [{"type": "location", "source": source}],
    }
    if movement.get("supplier_id"):
        supplier = private_urn("party", "supplier", movement["supplier_id"])
        event["destinationList"] = [{"type": "owning_party", "destination": supplier}]
    return event


# Each kind of `lot-moved` as its EPCIS event; a kind not listed here is left out.
_MOVEMENT_EVENTS = {MOVE: move_event, RETURN_TO_VENDOR: vendor_return_event}


def epcis_document(
    *,
    receipts: Iterable[Mapping[str, Any]],
    inputs: Iterable[Mapping[str, Any]],
    shipments: Iterable[Mapping[str, Any]],
    created_at: datetime,
    movements: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A lot's events as an EPCIS 2.0 JSON-LD document, in time order.

    `receipts` are the receipts of the lot and those of lots made from it (each with its
    output lot's attributes); `inputs` the input lots of those receipts; `shipments` the
    lot's shipment lines; `movements` its moves and returns to vendor. A receipt with inputs
    is a TransformationEvent, so the document shows the lot both as made from its inputs and
    as an input to other lots.
    """
    inputs_by_receipt: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in inputs:
        inputs_by_receipt[item["receipt_id"]].append(item)
    events: list[tuple[datetime, dict[str, Any]]] = []
    for receipt in receipts:
        consumed = inputs_by_receipt.get(receipt["receipt_id"])
        event = transformation_event(receipt, consumed) if consumed else receiving_event(receipt)
        events.append((receipt["received_at"], event))
    events += [(line["shipped_at"], shipping_event(line)) for line in shipments]
    events += [
        (movement["moved_at"], _MOVEMENT_EVENTS[movement["kind"]](movement))
        for movement in movements
        if movement["kind"] in _MOVEMENT_EVENTS
    ]
    events.sort(key=lambda pair: (pair[0], pair[1]["eventID"]))
    return {
        "@context": EPCIS_CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created_at.astimezone(UTC).isoformat(timespec="milliseconds"),
        "epcisBody": {"eventList": [event for _, event in events]},
    }
