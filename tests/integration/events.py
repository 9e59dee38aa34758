"""Events the integration tests publish, built the same way wherever they are needed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from shared.contracts.envelope import Incoming, OutgoingMessage
from shared.contracts.events import GoodsReceived, LotMoved, OrderShipped


def lot(
    code: str,
    *,
    supplier: str = "FARM-A",
    days_ago: int = 10,
    received_at: datetime | None = None,
    inputs: Sequence[GoodsReceived] = (),
) -> GoodsReceived:
    """A receipt of 100 units of lot `code` (its SKU is the code up to the first dash),
    `days_ago` or at `received_at`, made from 10 units of each of `inputs`."""
    return GoodsReceived(
        receipt_id=f"RC-{code}",
        lot_id=uuid.uuid4(),
        lot_code=code,
        sku=code.split("-", maxsplit=1)[0],
        quantity=100,
        received_at=received_at or datetime.now(UTC) - timedelta(days=days_ago),
        supplier={"supplier_id": supplier, "name": supplier.title()},
        inputs=[
            {"lot_id": i.lot_id, "lot_code": i.lot_code, "sku": i.sku, "quantity": 10}
            for i in inputs
        ],
    )


def shipment_of(
    customer: dict[str, Any],
    *lots: GoodsReceived,
    quantity: Decimal | int | str = 3,
    shipped_at: datetime | None = None,
    number: str | None = None,
) -> OrderShipped:
    """Shipment SH-`number` of order SO-`number` (a fresh number unless given) to `customer`,
    shipped at `shipped_at` (now unless given): a line of `quantity` from each of `lots`."""
    number = number or uuid.uuid4().hex[:8]
    return OrderShipped(
        shipment_id=f"SH-{number}",
        order_id=f"SO-{number}",
        customer=customer,
        shipped_at=shipped_at or datetime.now(UTC),
        lines=[
            {
                "line_no": line_no,
                "sku": shipped.sku,
                "lot_id": shipped.lot_id,
                "lot_code": shipped.lot_code,
                "quantity": quantity,
            }
            for line_no, shipped in enumerate(lots, start=1)
        ],
    )


def moved(
    goods: GoodsReceived,
    *,
    quantity: int = 1,
    moved_at: datetime | None = None,
    rma: str | None = None,
) -> LotMoved:
    """Movement MV-<lot code> of `quantity` of the lot out of MAIN, at `moved_at` (now unless
    given): to COLD-2, or with `rma`, back to its supplier (a return to vendor)."""
    return LotMoved(
        movement_id=f"MV-{goods.lot_code}",
        lot_id=goods.lot_id,
        lot_code=goods.lot_code,
        sku=goods.sku,
        kind="move" if rma is None else "return-to-vendor",
        quantity=quantity,
        uom=goods.uom,
        from_location="MAIN",
        to_location="COLD-2" if rma is None else None,
        supplier_id=goods.supplier.supplier_id if rma and goods.supplier else None,
        rma=rma,
        moved_at=moved_at or datetime.now(UTC),
    )


def incoming(event: Any, *, source: str = "/tests") -> Incoming[Any]:
    """`event` as a handler receives it from its topic, without a broker in between."""
    return Incoming.direct(event, source=source)


async def applied(database_url: str, event_ids: Sequence[str]) -> bool:
    """True once a service's inbox holds every one of these events: it has applied them, and
    all it emitted for them is in its outbox (with `read_settled`, then on the topics)."""
    connection = await asyncpg.connect(database_url)
    try:
        found = await connection.fetchval(
            "SELECT count(DISTINCT event_id) FROM inbox WHERE event_id = ANY($1::text[])",
            list(event_ids),
        )
    finally:
        await connection.close()
    return bool(found == len(set(event_ids)))


def event_id(message: OutgoingMessage) -> str:
    """The CloudEvents id a published message carries (what an inbox records)."""
    return dict(message.headers)["ce_id"].decode()
