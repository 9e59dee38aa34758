"""A recall database prepared in process, without a broker: the handlers record a lot and its
shipments, and a recall of the lot is issued, as the tests of notice writing need it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from services.recall.app import MIGRATIONS
from services.recall.handlers import Recalls
from shared.contracts.events import GoodsReceived, OrderShipped, RecallScope
from shared.runtime.database import Database
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from tests.integration.events import incoming

SOURCE = "/lottrace/recall"


@asynccontextmanager
async def issued_recall(
    database_url: str,
    service: Recalls,
    recalled: GoodsReceived,
    shipments: Sequence[OrderShipped],
    *,
    reason: str,
) -> AsyncIterator[Database]:
    """The migrated recall database, open until the block ends, once `service` has recorded
    `recalled` and its `shipments` and issued a class I recall of that lot for `reason`."""
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS), ("recall", MIGRATIONS)])
    async with Database(database_url, source=SOURCE, min_size=1, max_size=1) as database:
        async with database.transaction() as unit:
            await service.on_goods_received(unit, [incoming(recalled)])
            await service.on_order_shipped(unit, [incoming(shipped) for shipped in shipments])
        async with database.transaction() as unit:
            await service.issue(
                unit,
                reason=reason,
                classification="I",
                scope=RecallScope(lot_ids=[recalled.lot_id]),
                actor="test",
            )
        yield database
