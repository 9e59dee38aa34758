"""Numbered migrations on a real PostgreSQL: each applied once, in order, with its ledger row in
the same transaction; one changed after it was applied is said so and never applied again."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from shared.runtime.migrations import migrate


async def _tables(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        return [row["tablename"] for row in rows]
    finally:
        await connection.close()


async def test_pending_migrations_apply_once_and_a_changed_one_is_said_not_rerun(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_lots.sql").write_text("CREATE TABLE lots (lot_id uuid PRIMARY KEY);")
    (tmp_path / "0002_stock.sql").write_text("CREATE TABLE stock (lot_id uuid REFERENCES lots);")

    assert await migrate(database_url, [("demo", tmp_path)]) == [
        "demo/0001_lots",
        "demo/0002_stock",
    ]
    assert await migrate(database_url, [("demo", tmp_path)]) == []

    (tmp_path / "0001_lots.sql").write_text("CREATE TABLE lots (lot_id text PRIMARY KEY);")
    (tmp_path / "0003_bad.sql").write_text("CREATE TABLE holds (lot_id uuid); SELECT 1/0;")
    with capture_logs() as logs, pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(database_url, [("demo", tmp_path)])

    changed = [log for log in logs if log["event"] == "migration changed after it was applied"]
    assert [(log["component"], log["version"]) for log in changed] == [("demo", 1)]
    # The failed migration left neither its table nor its ledger row.
    assert await _tables(database_url) == ["lots", "schema_migrations", "stock"]
    (tmp_path / "0003_bad.sql").write_text("CREATE TABLE holds (lot_id uuid);")
    assert await migrate(database_url, [("demo", tmp_path)]) == ["demo/0003_bad"]

    # Its SQL runs, its ledger row cannot be written: neither stays.
    (tmp_path / "0004_counted.sql").write_text(
        "CREATE TABLE counts (lot_id uuid);"
        " INSERT INTO schema_migrations (component, version, name, checksum)"
        " VALUES ('demo', 4, 'counted', 'taken')"
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await migrate(database_url, [("demo", tmp_path)])
    assert "counts" not in await _tables(database_url)
