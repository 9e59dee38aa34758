"""Inventory's shipped batches against a real PostgreSQL: the lots a shipment names are locked
against other writers of their stock, the ones never seen created, in one statement."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from services.inventory import db
from services.inventory.app import create_app
from services.inventory.records import LotFacts
from shared.runtime.database import Database
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate

INVENTORY_MIGRATIONS = Path(create_app.__code__.co_filename).parent / "migrations"


async def test_a_shipment_locks_its_known_lots_and_creates_the_unknown_ones(
    database_url: str,
) -> None:
    """While a shipment is applied, no other transaction may take the lots it names that were
    known (they stay as they were); those it names first are created as it describes them."""
    await migrate(
        database_url, [("runtime", RUNTIME_MIGRATIONS), ("inventory", INVENTORY_MIGRATIONS)]
    )
    known, unknown = uuid.uuid4(), uuid.uuid4()
    database = Database(database_url, source="/test", min_size=1, max_size=1)
    await database.open()
    other = await asyncpg.connect(database_url)
    try:
        async with database.transaction() as unit:
            await db.ensure_lots(unit.connection, [LotFacts(known, "KIWI", "K-1", "EA")])
        async with database.transaction() as unit:
            await db.ensure_and_lock_lots(
                unit.connection,
                [LotFacts(known, "KIWI", "renamed", "KG"), LotFacts(unknown, "FIG", "F-1", "EA")],
            )
            with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                await other.execute("SELECT 1 FROM lots WHERE lot_id = $1 FOR UPDATE NOWAIT", known)
        rows = await other.fetch(
            "SELECT lot_id, sku, lot_code, uom FROM lots ORDER BY sku", timeout=10
        )
        assert [tuple(row) for row in rows] == [
            (unknown, "FIG", "F-1", "EA"),
            (known, "KIWI", "K-1", "EA"),
        ]
    finally:
        await other.close()
        await database.close()
