"""Lots announced without stock (`lot-registered`): a lot imported sold out, whose past
shipments, returns and recalls still name it. Inventory knows the lot, with nothing on hand,
so that a customer's return of it is taken in and the reports see it; no stock moves."""

from __future__ import annotations

from services.inventory import db
from services.inventory.records import RegisteredLot
from shared.contracts.envelope import Incoming
from shared.contracts.events import LotRegistered
from shared.runtime.database import UnitOfWork


async def on_lot_registered(unit: UnitOfWork, events: list[Incoming[LotRegistered]]) -> None:
    """Each lot registered, once: a re-sent registration changes nothing."""
    await db.register_lots(
        unit.connection, [RegisteredLot.of(incoming.data) for incoming in events]
    )
