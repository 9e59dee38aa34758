"""The one builder of `order-shipped`, from a shipment."""

from __future__ import annotations

from services.fulfillment.records import Shipment
from shared.contracts.events import OrderShipped


def order_shipped(shipment: Shipment) -> OrderShipped:
    # The shipment and its lines carry the event's fields under the same names.
    return OrderShipped.model_validate(shipment, from_attributes=True)
