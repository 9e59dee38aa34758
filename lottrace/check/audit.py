"""`lottrace check` from end to end: wait (with a deadline) until nothing is in flight, read
the projections, read the work in flight again, and compare."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lottrace.check.compare import Activity, CheckReport, build_report
from lottrace.check.reads import GroupOffsets, open_databases, read_activity, read_projections
from shared.runtime.settings import KafkaSettings

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class CheckOptions:
    """Where to read, how long to wait for in-flight work, and when an outbox is stuck."""

    database_urls: Mapping[str, str]
    kafka: KafkaSettings
    wait_seconds: float = 0.0
    stuck_after_seconds: float = 300.0


async def run_check(
    options: CheckOptions, *, on_wait: Callable[[Activity], None] | None = None
) -> CheckReport:
    """The audit. `on_wait` hears about each reading that still had work in flight."""
    async with (
        open_databases(options.database_urls) as databases,
        GroupOffsets.opened(options.kafka) as offsets,
    ):
        deadline = time.monotonic() + options.wait_seconds
        before = await read_activity(databases, offsets)
        while not before.quiet and time.monotonic() < deadline:
            if on_wait is not None:
                on_wait(before)
            await asyncio.sleep(POLL_SECONDS)
            before = await read_activity(databases, offsets)
        projections = await read_projections(databases)
        after = await read_activity(databases, offsets)
    return build_report(projections, before, after, stuck_after=options.stuck_after_seconds)
