"""Numbered `.sql` migrations, applied in order, each once, safe when replicas start together.

Files are named `NNNN_description.sql`. The runtime's own tables (inbox, outbox) are the
`runtime` component; each service's projection is its own component.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.runtime.logging import get_logger

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIGRATIONS_LOCK = 0x6C6F7474  # "lott": one advisory lock per database for all migrators

log = get_logger(__name__)


def service_migrations(service: str) -> Path:
    """Where a service keeps its numbered migrations: `services/<service>/migrations`."""
    return SERVICES_DIR / service / "migrations"


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover(component: str, folder: Path) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_description.sql")
        migrations.append(
            Migration(component, int(match.group(1)), match.group(2), path.read_text())
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{folder}: two migrations share a number")
    return migrations


_LEDGER = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        component  text        NOT NULL,
        version    integer     NOT NULL,
        name       text        NOT NULL,
        checksum   text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version)
    )
"""


async def migrate(
    url: str, components: list[tuple[str, Path]], *, search_path: str | None = None
) -> list[str]:
    """Apply what is pending; returns the names applied. Holds an advisory lock meanwhile.
    `search_path` migrates another schema than the default (a projection being rebuilt)."""
    connection = await asyncpg.connect(
        url, server_settings={"search_path": search_path} if search_path else None
    )
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
        await connection.execute(_LEDGER)
        done = await _applied(connection)
        applied_now: list[str] = []
        for component, folder in components:
            for migration in discover(component, folder):
                if _already_applied(done, component, migration):
                    continue
                await _apply(connection, component, migration)
                applied_now.append(f"{component}/{migration.version:04d}_{migration.name}")
        return applied_now
    finally:
        try:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
        finally:
            await connection.close()


async def _applied(connection: asyncpg.Connection) -> dict[tuple[str, int], str]:
    """The checksum of each migration applied, by component and version."""
    rows = await connection.fetch("SELECT component, version, checksum FROM schema_migrations")
    return {(row["component"], row["version"]): row["checksum"] for row in rows}


def _already_applied(
    done: dict[tuple[str, int], str], component: str, migration: Migration
) -> bool:
    """Whether the migration was applied; one changed since is said so, not applied again."""
    checksum = done.get((component, migration.version))
    if checksum is not None and checksum != migration.checksum:
        log.warning(
            "migration changed after it was applied",
            component=component,
            version=migration.version,
        )
    return checksum is not None


async def _apply(connection: asyncpg.Connection, component: str, migration: Migration) -> None:
    """One migration and its ledger row, in one transaction."""
    async with connection.transaction():
        await connection.execute(migration.sql)
        await connection.execute(
            "INSERT INTO schema_migrations (component, version, name, checksum)"
            " VALUES ($1, $2, $3, $4)",
            component,
            migration.version,
            migration.name,
            migration.checksum,
        )
    log.info("migration applied", component=component, version=migration.version)
