"""Inventory's database, migrated, for tests that call its handlers and SQL in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from services.inventory.app import create_app
from shared.runtime.database import Database
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate

INVENTORY_MIGRATIONS = Path(create_app.__code__.co_filename).parent / "migrations"


@asynccontextmanager
async def migrated_inventory(database_url: str) -> AsyncIterator[Database]:
    """Inventory's database, migrated, one connection, open until the block ends."""
    await migrate(
        database_url, [("runtime", RUNTIME_MIGRATIONS), ("inventory", INVENTORY_MIGRATIONS)]
    )
    async with Database(database_url, source="/test", min_size=1, max_size=1) as database:
        yield database
