"""Events the integration tests publish, built the same way wherever they are needed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from shared.contracts.envelope import Incoming, OutgoingMessage
from shared.contracts.events import GoodsReceived


def lot(
    code: str, *, supplier: str = "FARM-A", days_ago: int = 10, inputs: Sequence[GoodsReceived] = ()
) -> GoodsReceived:
    """A receipt of 100 units of lot `code` (its SKU is the code up to the first dash), made
    from 10 units of each of `inputs`."""
    return GoodsReceived(
        receipt_id=f"RC-{code}",
        lot_id=uuid.uuid4(),
        lot_code=code,
        sku=code.split("-", maxsplit=1)[0],
        quantity=100,
        received_at=datetime.now(UTC) - timedelta(days=days_ago),
        supplier={"supplier_id": supplier, "name": supplier.title()},
        inputs=[
            {"lot_id": i.lot_id, "lot_code": i.lot_code, "sku": i.sku, "quantity": 10}
            for i in inputs
        ],
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
