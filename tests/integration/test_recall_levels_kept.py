"""Recalls issued before check levels and targets were kept (recall migration 0003) get the
level and target the effectiveness check has held them to, A and 100 %, stored with them: no
recall is judged by a rule written nowhere, and none is left without its own."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from services.recall.app import MIGRATIONS
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from tests.integration.migrated import migrations_before

EVERY_MIGRATION = [("runtime", RUNTIME_MIGRATIONS), ("recall", MIGRATIONS)]


async def test_recalls_from_before_levels_were_kept_keep_level_a_and_100_percent(
    database_url: str, tmp_path: Path
) -> None:
    older = migrations_before("recall", MIGRATIONS, "0008", scratch=tmp_path)
    await migrate(database_url, older)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO recalls (recall_id, issued_at, reason, classification, scope,
                                 requested_by, shipment_watermark, affected_customer_count,
                                 shipped_quantity, check_level, target_percent)
            VALUES ('R-OLD', now(), 'mould', 'II', '{}', 'qa', 0, 0, 0, NULL, NULL),
                   ('R-NEW', now(), 'mould', 'II', '{}', 'qa', 0, 0, 0, 'B', 95)
            """
        )
        applied = await migrate(database_url, EVERY_MIGRATION)
        assert applied[0] == "recall/0008_recall_levels_kept"  # and those after it

        rows = await connection.fetch(
            "SELECT recall_id, check_level, target_percent FROM recalls ORDER BY recall_id"
        )
        assert [tuple(row) for row in rows] == [("R-NEW", "B", 95), ("R-OLD", "A", 100)]
        with pytest.raises(asyncpg.NotNullViolationError):
            await connection.execute(
                "UPDATE recalls SET target_percent = NULL WHERE recall_id = 'R-NEW'"
            )
    finally:
        await connection.close()
