"""Shipments imported at onboarding (`order-shipped` with `imported: true`): they never move
stock or reservations, but they are real past sales. Inventory keeps their history-only facts
so the reports and returns see them (docs/reports.md):

- the units each lot shipped per day (the sell rates, the lots' pace);
- the lot's history, an entry marked `shipped_imported`;
- what each customer received of each lot, which a return of it is checked against.

Pure: the events in, the rows `db.py` writes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from services.inventory.records import Movement
from services.inventory.reporting import ShippedDay
from shared.contracts.envelope import Incoming
from shared.contracts.events import OrderShipped

# The history's name for a shipment made before lottrace: it moved no stock here.
SHIPPED_IMPORTED = "shipped_imported"


@dataclass(frozen=True)
class ImportedShipmentLine:
    """One line of an imported shipment. The field order is the column order of
    `imported_shipment_lines`."""

    event_id: str
    line_no: int
    shipment_id: str
    order_id: str
    customer_id: str
    lot_id: UUID
    quantity: Decimal
    shipped_at: datetime

    @property
    def day(self) -> date:
        return self.shipped_at.astimezone(UTC).date()

    def shipped_day(self) -> ShippedDay:
        """Its units in its lot's shipped total of its day (summed by `db.py`)."""
        return ShippedDay(self.lot_id, self.day, self.quantity)

    def movement(self) -> Movement:
        return Movement(
            self.lot_id,
            SHIPPED_IMPORTED,
            self.quantity,
            self.event_id,
            order_id=self.order_id,
            detail=f"{self.shipment_id}, shipped {self.day.isoformat()} before lottrace",
        )


def imported_lines(events: Iterable[Incoming[OrderShipped]]) -> list[ImportedShipmentLine]:
    """The lines of the imported shipments among these events."""
    return [
        ImportedShipmentLine(
            incoming.id,
            line.line_no,
            shipment.shipment_id,
            shipment.order_id,
            shipment.customer.customer_id,
            line.lot_id,
            line.quantity,
            shipment.shipped_at,
        )
        for incoming in events
        if (shipment := incoming.data).imported
        for line in shipment.lines
    ]
