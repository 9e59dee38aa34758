"""Moves and returns to vendor in the records: inventory's `lot-moved` event, and recall's
EPCIS events and FSMA 204 Shipping row made from it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.inventory.domain import same_location_problem
from services.inventory.events import lot_moved
from services.inventory.records import FloorMovement, LockedLot
from services.recall.reports import (
    FsmaColumn,
    epcis_document,
    fsma_rows,
    move_event,
    vendor_return_event,
)
from shared.contracts.events import MOVE, RETURN_TO_VENDOR

LOT_ID = UUID("0193a6c0-1a2b-7c3d-8e4f-0000000000b1")
AT = datetime(2026, 12, 6, 9, 45, tzinfo=UTC)
LOT = LockedLot(LOT_ID, "BASIL", "BAS-7", [], gtin="09501101530003", supplier_id="FARM-B", uom="KG")


def movement(**overrides: Any) -> dict[str, Any]:
    """A movement as recall reads it back: the event's fields and its lot's attributes."""
    row: dict[str, Any] = {
        "movement_id": "MV-1",
        "lot_id": LOT_ID,
        "lot_code": "BAS-7",
        "sku": "BASIL",
        "gtin": "09501101530003",
        "kind": MOVE,
        "quantity": Decimal("4.000"),
        "uom": "KG",
        "from_location": "MAIN",
        "to_location": "BAY-2",
        "supplier_id": None,
        "supplier_name": None,
        "rma": None,
        "reason": "slotting",
        "actor": "floor-lead",
        "moved_at": AT,
        "supplier_lot_code": None,
        "lot_location": "DOCK-1",
        "production_date": None,
        "expiry_date": date(2026, 12, 20),
        "best_before_date": None,
        "produced": False,
    }
    return {**row, **overrides}


def vendor_return(**overrides: Any) -> dict[str, Any]:
    return movement(
        movement_id="MV-2",
        kind=RETURN_TO_VENDOR,
        quantity=Decimal(8),
        to_location=None,
        supplier_id="FARM-B",
        supplier_name="Farm B",
        rma="RMA-77",
        reason="failed QC: mould",
        **overrides,
    )


# ------------------------------------------------------------------ inventory


def test_a_move_is_announced_with_its_lot_places_who_and_why() -> None:
    moving = FloorMovement(MOVE, Decimal(4), "MAIN", "floor-lead", "slotting", to_location="BAY-2")
    event = lot_moved(LOT, moving, at=AT)
    assert event.model_dump(exclude={"movement_id"}) == {
        "lot_id": LOT_ID,
        "lot_code": "BAS-7",
        "sku": "BASIL",
        "gtin": "09501101530003",
        "kind": "move",
        "quantity": "4",  # quantities travel as decimal strings
        "uom": "KG",
        "from_location": "MAIN",
        "to_location": "BAY-2",
        "supplier_id": None,  # a move stays with us
        "rma": None,
        "reason": "slotting",
        "moved_at": AT,
        "actor": "floor-lead",
    }
    assert event.key() == str(LOT_ID)


def test_a_return_to_vendor_names_the_lots_supplier_and_the_rma() -> None:
    returning = FloorMovement(RETURN_TO_VENDOR, Decimal(8), "MAIN", "qa", "mould", rma="RMA-77")
    event = lot_moved(LOT, returning, at=AT)
    assert (event.kind, event.supplier_id, event.rma, event.to_location) == (
        "return-to-vendor",
        "FARM-B",
        "RMA-77",
        None,
    )


def test_every_movement_gets_its_own_id() -> None:
    moving = FloorMovement(MOVE, Decimal(1), "MAIN", "a", None, to_location="BAY-2")
    assert lot_moved(LOT, moving, at=AT).movement_id != lot_moved(LOT, moving, at=AT).movement_id


def test_a_move_goes_somewhere_else() -> None:
    assert same_location_problem("MAIN", "BAY-2") is None
    assert same_location_problem("MAIN", "MAIN") == "a move goes somewhere else than MAIN"


# ------------------------------------------------------------------ EPCIS


def test_a_move_is_an_observe_storing_event_from_one_location_to_the_other() -> None:
    event = move_event(movement())
    assert (event["type"], event["action"], event["bizStep"]) == (
        "ObjectEvent",
        "OBSERVE",
        "storing",
    )
    assert event["readPoint"] == event["bizLocation"] == {"id": "urn:lottrace:location:BAY-2"}
    assert event["sourceList"] == [{"type": "location", "source": "urn:lottrace:location:MAIN"}]
    assert event["destinationList"] == [
        {"type": "location", "destination": "urn:lottrace:location:BAY-2"}
    ]
    assert event["quantityList"] == [
        {
            "epcClass": "https://id.gs1.org/01/09501101530003/10/BAS-7",
            "quantity": 4,
            "uom": "KGM",
        }
    ]


def test_a_return_to_vendor_is_shipping_returned_to_the_supplier_under_its_rma() -> None:
    event = vendor_return_event(vendor_return())
    assert (event["action"], event["bizStep"], event["disposition"]) == (
        "OBSERVE",
        "shipping",
        "returned",
    )
    assert event["destinationList"] == [
        {"type": "owning_party", "destination": "urn:lottrace:party:supplier:FARM-B"}
    ]
    assert event["bizTransactionList"] == [
        {"type": "rma", "bizTransaction": "urn:lottrace:rma:RMA-77"}
    ]
    assert event["readPoint"] == {"id": "urn:lottrace:location:MAIN"}
    assert "bizLocation" not in event  # the goods leave our custody


def test_the_lots_document_lists_its_movements_in_time_order_with_stable_ids() -> None:
    def document() -> dict[str, Any]:
        return epcis_document(
            receipts=[],
            inputs=[],
            shipments=[],
            movements=[vendor_return(moved_at=AT.replace(hour=11)), movement()],
            created_at=AT,
        )

    events = document()["epcisBody"]["eventList"]
    assert [event["bizStep"] for event in events] == ["storing", "shipping"]
    assert [event["eventID"] for event in events] == [
        event["eventID"] for event in document()["epcisBody"]["eventList"]
    ]


def test_a_movement_of_a_kind_not_known_yet_is_left_out_of_the_document() -> None:
    document = epcis_document(
        receipts=[], inputs=[], shipments=[], movements=[movement(kind="cycle")], created_at=AT
    )
    assert document["epcisBody"]["eventList"] == []


# ------------------------------------------------------------------ FSMA 204


def test_a_return_to_vendor_is_a_shipping_row_to_the_supplier() -> None:
    [row] = fsma_rows([], [], [], [vendor_return()])
    assert row[FsmaColumn.EVENT_TYPE] == "Shipping"
    assert row[FsmaColumn.EVENT_DATE] == date(2026, 12, 6)
    assert row[FsmaColumn.EVENT_TIME] == time(9, 45)
    assert row[FsmaColumn.EVENT_LOCATION] == "MAIN"
    assert row[FsmaColumn.RECIPIENT] == "Farm B"
    assert row[FsmaColumn.RECIPIENT_ID] == "FARM-B"
    assert row[FsmaColumn.REFERENCE_DOCUMENT_TYPE] == "Return Authorization (RMA)"
    assert row[FsmaColumn.REFERENCE_DOCUMENT_NUMBER] == "RMA-77"
    assert row[FsmaColumn.TLC] == "(01)09501101530003(10)BAS-7"
    assert (row[FsmaColumn.QUANTITY], row[FsmaColumn.UNIT_OF_MEASURE]) == (Decimal(8), "KG")
    assert row[FsmaColumn.DATE_CODE] == date(2026, 12, 20)


def test_a_move_within_our_facility_is_no_fsma_204_event() -> None:
    assert fsma_rows([], [], [], [movement()]) == []
