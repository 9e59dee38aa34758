"""An embedded PostgreSQL or broker that exits while we wait for it is one message, at once
rather than after the wait's timeout: its exit status, and the line of this run's log that
says why (never an older run's, in a log kept between runs), and where the log is."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lottrace.infra import (
    EmbeddedPostgres,
    Hopeless,
    ProcessExited,
    StartError,
    TansuBroker,
    wait_until,
)


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


async def test_a_postgresql_that_dies_is_told_from_this_runs_log_not_an_older_one(
    tmp_path: Path,
) -> None:
    log = tmp_path / "postgres.log"
    log.write_text('FATAL:  an older run could not start: "lots"\n')
    server = EmbeddedPostgres(durable=False, log_path=log)
    await server.start(timeout=60)
    try:
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)
        with pytest.raises(Hopeless, match="exited with -9") as refusal:
            await server.is_ready()
    finally:
        server.remove()
    assert "an older run" not in str(refusal.value)


async def test_a_broker_that_dies_ends_the_wait_at_once_saying_so(tmp_path: Path) -> None:
    broker = TansuBroker(log_path=tmp_path / "tansu.log")
    await broker.start()
    try:
        assert broker.process is not None
        broker.process.kill()
        broker.process.wait(10)
        started = time.monotonic()
        with pytest.raises(ProcessExited, match="Tansu exited with -9"):
            await wait_until(broker.is_ready, timeout=30, what="Tansu answering")
    finally:
        broker.stop()
    assert time.monotonic() - started < 5, "it waited out the timeout for a dead broker"
