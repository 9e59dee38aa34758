"""An embedded PostgreSQL that exits while starting is one message: the line of its log that
says why, and where the log is, at once rather than after the start's timeout."""

from __future__ import annotations

import time

import pytest

from lottrace.infra import EmbeddedPostgres, StartError


async def test_a_postgresql_that_exits_while_starting_says_why_at_once() -> None:
    server = EmbeddedPostgres(durable=False, settings={"max_connections": "lots"})
    started = time.monotonic()
    try:
        with pytest.raises(StartError) as refusal:
            await server.start(timeout=60)
    finally:
        server.remove()
    assert time.monotonic() - started < 30, "it waited out the timeout for a dead server"
    said = str(refusal.value)
    assert said.startswith("PostgreSQL did not start: it exited with 1: ")
    assert 'FATAL:  invalid value for parameter "max_connections": "lots"' in said
    assert said.endswith(f"; see {server.log_path}")
