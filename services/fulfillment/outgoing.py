"""The one builder of `order-shipped`, from a shipment."""

from __future__ import annotations

from services.fulfillment.records import Shipment
from shared.contracts.events import OrderShipped, ShipmentLine


def order_shipped(shipment: Shipment) -> OrderShipped:
    return OrderShipped(
        shipment_id=shipment.shipment_id,
        order_id=shipment.order_id,
        customer=shipment.customer,
        shipped_at=shipment.shipped_at,
        lines=[
            ShipmentLine(
                line_no=line.line_no,
                sku=line.sku,
                lot_id=line.lot_id,
                lot_code=line.lot_code,
                quantity=line.quantity,
                uom=line.uom,
            )
            for line in shipment.lines
        ],
    )
