"""Lots announced without stock (`lot-registered`): a lot imported sold out. Recall keeps it as
received from its supplier, with a receipt of nothing, as `goods-received` would have it: its
shipments are of a received lot, a recall by supplier or receipt date reaches them, and its
FSMA 204 records open with its Receiving event."""

from __future__ import annotations

from decimal import Decimal

from services.recall import db
from services.recall.records import LotRow, ReceiptRow
from shared.contracts.envelope import Incoming
from shared.contracts.events import LotRegistered
from shared.runtime.database import UnitOfWork

NOTHING = Decimal(0)


def registered_lot(event: LotRegistered) -> LotRow:
    return LotRow.of(event, quantity=NOTHING)


def registration_receipt(incoming: Incoming[LotRegistered]) -> ReceiptRow:
    """The lot's receipt, of nothing: how many units came in then is not known."""
    return ReceiptRow.of(incoming, receipt_id=incoming.data.registration_id, quantity=NOTHING)


async def on_lot_registered(unit: UnitOfWork, events: list[Incoming[LotRegistered]]) -> None:
    """Each lot registered, as received; a re-sent registration changes nothing."""
    lots = {incoming.data.lot_id: registered_lot(incoming.data) for incoming in events}
    await db.upsert_lots(unit.connection, list(lots.values()))
    await db.insert_receipts(unit.connection, [registration_receipt(e) for e in events])
