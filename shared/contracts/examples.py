"""Realistic example events of every type: the examples of the published contract documents.

Each topic has its own builder; `examples()` lists them in the order their messages are
numbered, so the generated documents stay the same byte for byte.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from shared.contracts.events import (
    AffectedLot,
    Allocation,
    Backorder,
    Event,
    GoodsReceived,
    GoodsReturned,
    LotAllocated,
    LotInput,
    LotMoved,
    LotRegistered,
    LotStatusChanged,
    NoticeShipment,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderShipped,
    RecallCustomerNotice,
    RecallIssued,
    RecallResponse,
    RecallScope,
    ReportedUnits,
    ReturnLine,
    ShipmentLine,
)
from shared.contracts.types import Address, Customer, Money, Supplier

NamedExample = tuple[str, Event]

EXAMPLE_TIME = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
_ORANGES_LOT = UUID("0193a6c0-1a2b-7c3d-8e4f-000000000001")
_JUICE_LOT = UUID("0193a6c0-1a2b-7c3d-8e4f-000000000002")
_JUICE_LOT_2 = UUID("0193a6c0-1a2b-7c3d-8e4f-000000000003")
_ORANGES_CODE = "ORG-20261120-0003"
_JUICE_CODE = "OJ-1L-20261121-0001"
_CUSTOMER = Customer(
    customer_id="C-042",
    name="Corner Grocery",
    email="orders@corner-grocery.example",
    phone="+49 30 1234567",
    address=Address(
        line1="Hauptstrasse 1", city="Berlin", region="BE", postal_code="10115", country="DE"
    ),
)


def _order_examples() -> list[NamedExample]:
    """The upstream order topics: an order placed, an order withdrawn."""
    return [
        (
            "order with two lines",
            OrderPlaced(
                order_id="SO-1001",
                customer=_CUSTOMER,
                lines=[
                    OrderLine(line_no=1, sku="OJ-1L", quantity=Decimal(12)),
                    OrderLine(line_no=2, sku="AJ-1L", quantity=Decimal("6"), uom="EA"),
                ],
                min_remaining_shelf_life_days=5,
                placed_at=EXAMPLE_TIME,
            ),
        ),
        (
            "order withdrawn",
            OrderCancelled(order_id="SO-1002", reason="Customer withdrew the order."),
        ),
    ]


def _receipt_examples() -> list[NamedExample]:
    """goods-received: a purchase, and a lot produced from it."""
    return [
        (
            "purchase",
            GoodsReceived(
                receipt_id="RCV-20261120-0007",
                lot_id=_ORANGES_LOT,
                lot_code=_ORANGES_CODE,
                sku="ORANGES-KG",
                quantity=Decimal(500),
                uom="KG",
                location="DOCK-1",
                received_at=EXAMPLE_TIME,
                supplier=Supplier(supplier_id="SUP-7", name="Valencia Growers"),
                supplier_lot_code="VG-4471",
                purchase_order="PO-5521",
                production_date=date(2026, 11, 18),
                expiry_date=date(2026, 12, 2),
                unit_cost=Money(amount=Decimal("1.25"), currency="EUR"),
            ),
        ),
        (
            "lot produced from an input lot",
            GoodsReceived(
                receipt_id="PRD-20261121-0001",
                lot_id=_JUICE_LOT,
                lot_code=_JUICE_CODE,
                sku="OJ-1L",
                gtin="09501101530003",
                quantity=Decimal(200),
                received_at=EXAMPLE_TIME,
                production_date=date(2026, 11, 21),
                expiry_date=date(2026, 12, 5),
                best_before_date=date(2026, 12, 3),
                inputs=[
                    LotInput(
                        lot_id=_ORANGES_LOT,
                        lot_code=_ORANGES_CODE,
                        sku="ORANGES-KG",
                        quantity=Decimal("412.5"),
                        uom="KG",
                    )
                ],
            ),
        ),
    ]


def _allocation_examples() -> list[NamedExample]:
    """lot-allocated: a line split across two lots, another backordered."""
    return [
        (
            "line split across two lots, one line backordered",
            LotAllocated(
                order_id="SO-1001",
                customer_id="C-042",
                allocations=[
                    Allocation(
                        line_no=1,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT,
                        lot_code=_JUICE_CODE,
                        quantity=Decimal(8),
                        expiry_date=date(2026, 12, 5),
                    ),
                    Allocation(
                        line_no=1,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT_2,
                        lot_code="OJ-1L-20261121-0002",
                        quantity=Decimal(4),
                        expiry_date=date(2026, 12, 6),
                    ),
                ],
                backordered=[
                    Backorder(
                        line_no=2,
                        sku="AJ-1L",
                        quantity=Decimal(6),
                        reason="no lot with 5 days of shelf life left",
                    )
                ],
                revision=1,
                allocated_at=EXAMPLE_TIME,
            ),
        ),
    ]


def _shipment_examples() -> list[NamedExample]:
    """order-shipped: the allocation above, shipped."""
    return [
        (
            "shipment of two lots",
            OrderShipped(
                shipment_id="SH-3001",
                order_id="SO-1001",
                customer=_CUSTOMER,
                shipped_at=EXAMPLE_TIME,
                lines=[
                    ShipmentLine(
                        line_no=1,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT,
                        lot_code=_JUICE_CODE,
                        quantity=Decimal(8),
                    ),
                    ShipmentLine(
                        line_no=1,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT_2,
                        lot_code="OJ-1L-20261121-0002",
                        quantity=Decimal(4),
                    ),
                ],
            ),
        ),
    ]


def _recall_examples() -> list[NamedExample]:
    """recall-issued: the recall summary, then its notice to one customer."""
    return [
        (
            "recall of a raw lot and the lot made from it",
            RecallIssued(
                recall_id="RC-0001",
                issued_at=EXAMPLE_TIME,
                reason="Supplier reported possible Salmonella contamination.",
                classification="I",
                scope=RecallScope(lot_codes=[_ORANGES_CODE], sku="ORANGES-KG"),
                affected_lots=[
                    AffectedLot(
                        lot_id=_ORANGES_LOT,
                        lot_code=_ORANGES_CODE,
                        sku="ORANGES-KG",
                        supplier_id="SUP-7",
                    ),
                    AffectedLot(
                        lot_id=_JUICE_LOT,
                        lot_code=_JUICE_CODE,
                        sku="OJ-1L",
                        via_lot_id=_ORANGES_LOT,
                    ),
                ],
                affected_customer_count=1,
                shipped_quantity=Decimal(8),
            ),
        ),
        (
            "notice to one affected customer",
            RecallCustomerNotice(
                recall_id="RC-0001",
                customer=_CUSTOMER,
                shipments=[
                    NoticeShipment(
                        shipment_id="SH-3001",
                        order_id="SO-1001",
                        shipped_at=EXAMPLE_TIME,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT,
                        lot_code=_JUICE_CODE,
                        quantity=Decimal(8),
                    )
                ],
                reason="Supplier reported possible Salmonella contamination.",
                classification="I",
                part=1,
                parts=1,
            ),
        ),
    ]


def _follow_up_examples() -> list[NamedExample]:
    """The v1.1 topics: a return, a customer's answer to a recall, a lot's new status."""
    return [
        (
            "recalled units returned by a customer",
            GoodsReturned(
                return_id="RT-3001",
                customer=_CUSTOMER,
                shipment_id="SH-5001",
                recall_id="RC-2026-0007",
                returned_at=EXAMPLE_TIME,
                lines=[
                    ReturnLine(
                        line_no=1,
                        sku="OJ-1L",
                        lot_id=_JUICE_LOT,
                        lot_code=_JUICE_CODE,
                        quantity=Decimal(4),
                        reason="recall",
                        condition="sealed",
                    )
                ],
            ),
        ),
        (
            "a customer reports units destroyed",
            RecallResponse(
                response_id="RR-9001",
                recall_id="RC-2026-0007",
                customer_id="C-042",
                responded_at=EXAMPLE_TIME,
                kind="units-reported",
                channel="phone",
                units=[
                    ReportedUnits(lot_code=_JUICE_CODE, on_hand=Decimal(0), destroyed=Decimal(2))
                ],
                note="Store manager confirmed by phone.",
            ),
        ),
        (
            "a lot released after QC",
            LotStatusChanged(
                lot_id=_JUICE_LOT,
                lot_code=_JUICE_CODE,
                sku="OJ-1L",
                status="available",
                previous_status="quarantined",
                reason="QC passed",
                changed_at=EXAMPLE_TIME,
                actor="qa-lead",
            ),
        ),
    ]


def _movement_examples() -> list[NamedExample]:
    """The lottrace addition: a lot moved between locations, a lot returned to its supplier."""
    return [
        (
            "a lot moved to a picking bay",
            LotMoved(
                movement_id="0193a6c0-1a2b-7c3d-8e4f-0000000000a1",
                lot_id=_JUICE_LOT,
                lot_code=_JUICE_CODE,
                sku="OJ-1L",
                gtin="09501101530003",
                kind="move",
                quantity=Decimal(12),
                from_location="MAIN",
                to_location="BAY-2",
                reason="slotting",
                moved_at=EXAMPLE_TIME,
                actor="floor-lead",
            ),
        ),
        (
            "a lot returned to its supplier",
            LotMoved(
                movement_id="0193a6c0-1a2b-7c3d-8e4f-0000000000a2",
                lot_id=_ORANGES_LOT,
                lot_code=_ORANGES_CODE,
                sku="ORANGES-KG",
                kind="return-to-vendor",
                quantity=Decimal(40),
                uom="KG",
                from_location="DOCK-1",
                supplier_id="SUP-7",
                rma="RMA-77",
                reason="failed QC: mould",
                moved_at=EXAMPLE_TIME,
                actor="qa-lead",
            ),
        ),
    ]


def _registration_examples() -> list[NamedExample]:
    """The lottrace addition: a lot imported sold out, known without stock."""
    return [
        (
            "a lot imported sold out",
            LotRegistered(
                registration_id="0193a6c0-1a2b-7c3d-8e4f-0000000000b1",
                lot_id=UUID("0193a6c0-1a2b-7c3d-8e4f-000000000004"),
                lot_code="OJ-1L-20260715-0001",
                sku="OJ-1L",
                gtin="09501101530003",
                location="MAIN",
                received_at=datetime(2026, 7, 15, tzinfo=UTC),
                supplier=Supplier(supplier_id="GROVE", name="Grove Farms"),
                supplier_lot_code="GF-7702",
                purchase_order="PO-5410",
                expiry_date=date(2027, 1, 12),
                unit_cost=Money(amount=Decimal("0.82"), currency="EUR"),
                reason="onboarding",
            ),
        ),
    ]


def examples() -> list[NamedExample]:
    """One or more realistic events of every type, named; they become the messages' examples."""
    return [
        *_order_examples(),
        *_receipt_examples(),
        *_allocation_examples(),
        *_shipment_examples(),
        *_recall_examples(),
        *_follow_up_examples(),
        *_movement_examples(),
        *_registration_examples(),
    ]
