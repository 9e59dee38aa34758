"""Events the integration tests publish, built the same way wherever they are needed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

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
