"""The one builder of `order-shipped`, from a shipment."""

from __future__ import annotations

from services.fulfillment.records import Shipment
from shared.contracts.events import OrderShipped


def order_shipped(shipment: Shipment, *, imported: bool = False) -> OrderShipped:
    """`imported`: a shipment made before lottrace, loaded at onboarding (never moves stock)."""
    # The shipment and its lines carry the event's fields under the same names.
    shipped = OrderShipped.model_validate(shipment, from_attributes=True)
    return shipped.model_copy(update={"imported": True}) if imported else shipped
