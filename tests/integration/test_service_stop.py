"""A service stops, against a real broker and PostgreSQL, even when one of its tasks will not:
the task is left behind with a warning naming it, and the relay, producer and pool close.
Seen once in CI: a service's stop waited five minutes, its relay still running."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from lottrace.infra import TansuBroker
from shared.runtime import service
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"


async def test_a_task_that_ignores_its_cancellation_does_not_hold_the_stop(
    database_url: str, broker: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def stubborn(_: ServiceRuntime) -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # what a library swallowing its cancellation looks like

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    runtime = ServiceRuntime(
        name="probe",
        settings=ServiceSettings(database_url=database_url, kafka=kafka),
        migrations=PROBE_MIGRATIONS,
        background=[stubborn],
    )
    monkeypatch.setattr(service, "STOP_TASKS_SECONDS", 1.0)
    stopped = False
    try:
        await runtime.start()
        await asyncio.wait_for(runtime.started.wait(), 60)
        tasks = {task.get_name(): task for task in runtime._tasks}
        started = time.monotonic()
        with capture_logs() as logs:
            await asyncio.wait_for(runtime.stop(), 60)
            stopped = True
        assert time.monotonic() - started < 10
        assert tasks["probe-relay"].done()
        assert not tasks["probe-job"].done()  # left behind, not waited for
        assert not runtime.database.is_open
        [left] = [entry for entry in logs if entry["event"].startswith("stop step did not end")]
        assert left["tasks"] == ["probe-job"]
    finally:
        release.set()
        if not stopped:
            await runtime.stop()
