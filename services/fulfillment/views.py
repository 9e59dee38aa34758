"""The fulfillment responses, each built from its records in one place. The views refuse
unknown fields, so a field a record gains and its view lacks fails loudly."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from uuid import UUID

from services.fulfillment.domain import Allocated, Line, shown_status
from services.fulfillment.records import (
    BackorderRecord,
    OrderRecord,
    Shipment,
    ShipmentLineRecord,
    StoredShipment,
)
from services.fulfillment.schemas import (
    AllocationView,
    BackorderView,
    OrderLineView,
    OrderView,
    ShipmentView,
    ShippedLine,
)
from shared.contracts.types import Customer


@dataclass(frozen=True)
class OrderDetails:
    """Everything `GET /orders/{id}` shows of one order."""

    order: OrderRecord
    lines: list[Line]
    allocations: list[Allocated]
    blocked: dict[UUID, str]
    backorders: list[BackorderRecord]
    shipments: list[StoredShipment]
    shipped_lines: list[ShipmentLineRecord]


def _customer_json(customer: Customer | None) -> dict[str, object] | None:
    return None if customer is None else customer.model_dump(mode="json", exclude_none=True)


def shipment_view(shipment: Shipment) -> ShipmentView:
    return ShipmentView(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        customer=_customer_json(shipment.customer) or {},
        shipped_at=shipment.shipped_at,
        shipped_by=shipment.shipped_by,
        lines=[ShippedLine(**asdict(line)) for line in shipment.lines],
    )


def order_view(details: OrderDetails) -> OrderView:
    order = details.order
    customer = _customer_json(order.customer)
    per_shipment: dict[str, list[ShippedLine]] = defaultdict(list)
    for row in details.shipped_lines:
        per_shipment[row.shipment_id].append(ShippedLine(**asdict(row.ship_line)))
    return OrderView(
        order_id=order.order_id,
        status=shown_status(order.status, placed=order.customer_id is not None),
        customer=customer,
        placed_at=order.placed_at,
        allocation_revision=order.allocation_revision,
        lines=[OrderLineView(**asdict(line)) for line in details.lines],
        allocations=[
            AllocationView(**asdict(a), blocked=details.blocked.get(a.lot_id))
            for a in details.allocations
        ],
        backordered=[_backorder_view(row) for row in details.backorders],
        shipments=[
            ShipmentView(
                shipment_id=s.shipment_id,
                order_id=order.order_id,
                customer=customer or {},
                shipped_at=s.shipped_at,
                shipped_by=s.shipped_by,
                lines=per_shipment.get(s.shipment_id, []),
            )
            for s in details.shipments
        ],
    )


def _backorder_view(row: BackorderRecord) -> BackorderView:
    return BackorderView(
        line_no=row.line_no, sku=row.sku, quantity=row.quantity, uom=row.uom, reason=row.reason
    )
