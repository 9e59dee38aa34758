"""`python -m bench.notice_timeline`: where the 100k-customer recall's notices wait, as one
timeline per round, in seconds after the request. The history and the recall are those of
`python -m bench.notices_at_scale`; the recall service runs at LOG_LEVEL=DEBUG, and the lines
merged are:

- `notice chunk committed`: a notifier worker's chunk (5,000 notices) committed;
- `outbox round`: the relay fetched ROWS rows and published them (seconds of each);
- `outbox broker checked`, and every warning (a relay waiting, interrupted, a notifier failing);
- `READ`: a fetch of the bench's reader: how many notices, and when the relay appended the
  first and last of them (their record timestamps), so a reader behind the broker shows;
- `SLOW`: a statement of the recall database running for over SLOW_S, sampled every 0.2 s,
  with what it waits on.

`--explain-ms N` has PostgreSQL log the plan of every statement over N ms to postgres.log in
the printed log directory (auto_explain, analyzed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.notices_at_scale import BIG_LOT, CUSTOMERS, LINES, load
from bench.run import Tail, on_free_ports, recall_and_hear
from lottrace.devstack import Platform

SLOW_S = 0.3
Moment = tuple[float, str]  # wall-clock seconds, what happened
_SERVICE_FIELDS = {"event", "timestamp", "service", "level", "logger"}
_TRACED = ("notice chunk committed", "outbox round", "outbox broker checked")
_ACTIVE = """
    SELECT pid, wait_event_type, wait_event,
           extract(epoch FROM clock_timestamp() - query_start)::float8 AS running,
           left(regexp_replace(query, '\\s+', ' ', 'g'), 50) AS statement
    FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND state = 'active' AND backend_type = 'client backend'
"""


class RecordingTail(Tail):
    """The bench's reader, noting each fetch that brought records: when, how many, and when
    the first and the last of them were appended (wall-clock seconds)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.fetches: list[tuple[float, int, float, float]] = []

    async def read(self, timeout_ms: int = 200) -> list[Any]:
        records = await super().read(timeout_ms)
        if records:
            appended = [record.timestamp / 1000 for record in records]
            self.fetches.append((time.time(), len(records), min(appended), max(appended)))
        return records

    def moments(self, since: float) -> list[Moment]:
        return [
            (at, f"READ {count} appended {first - since:.3f}..{last - since:.3f}")
            for at, count, first, last in self.fetches
        ]


def service_moments(log: Path, since: float) -> list[Moment]:
    """The traced debug lines and every warning the recall service logged since then."""
    moments = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") not in _TRACED and entry.get("level") not in ("warning", "error"):
            continue
        at = datetime.fromisoformat(entry["timestamp"]).timestamp()
        if at >= since:
            fields = {k: v for k, v in entry.items() if k not in _SERVICE_FIELDS}
            moments.append((at, f"{entry['event']} {fields}"))
    return moments


async def sample_slow_statements(url: str, into: list[Moment]) -> None:
    """Until cancelled: every statement running for over SLOW_S, with what it waits on."""
    connection = await asyncpg.connect(url)
    try:
        while True:
            for row in await connection.fetch(_ACTIVE):
                if row["running"] > SLOW_S:
                    waits = f"{row['wait_event_type']}/{row['wait_event']}"
                    into.append((time.time(), f"SLOW pid {row['pid']} {row['running']:.2f} s"
                                 f" waiting {waits}: {row['statement']}"))  # fmt: skip
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def explain_slow_statements(url: str, over_ms: int) -> None:
    """auto_explain in every new session of the recall database, and the relay's session
    started again so that it has it too."""
    connection = await asyncpg.connect(url)
    try:
        database = await connection.fetchval("SELECT current_database()")
        for setting, value in (
            ("session_preload_libraries", "auto_explain"),
            ("auto_explain.log_min_duration", str(over_ms)),
            ("auto_explain.log_analyze", "on"),
        ):
            await connection.execute(f"ALTER DATABASE {database} SET {setting} = '{value}'")
        await connection.execute(  # the relay's advisory lock: `outb`
            "SELECT pg_terminate_backend(pid) FROM pg_locks"
            " WHERE locktype = 'advisory' AND objid = 1869968482 AND granted"
        )
    finally:
        await connection.close()


async def timeline(platform: Platform, tail: RecordingTail) -> list[str]:
    """One recall of the big lot, as timeline lines."""
    tail.fetches.clear()
    slow: list[Moment] = []
    url = platform.database_urls["recall"]
    sampler = asyncio.create_task(sample_slow_statements(url, slow))
    requested = time.time()
    heard = await recall_and_hear(platform, tail, str(BIG_LOT), reason="bench")
    sampler.cancel()
    await asyncio.sleep(0.5)  # the last log lines reach the file
    assert platform.log_dir is not None
    moments = service_moments(platform.log_dir / "recall.log", requested)
    moments = sorted(moments + tail.moments(requested) + slow)
    lines = [f"summary {heard.summary_s:.2f} s, {len(heard.notice_s)} notices {heard.done_s:.2f} s"]
    return lines + [f"{at - requested:8.3f} {what}" for at, what in moments]


async def run(rounds: int, explain_ms: int | None) -> None:
    log_dir = Path(tempfile.mkdtemp(prefix="lottrace-bench-timeline-"))
    platform = on_free_ports(
        durable_postgres=True,
        log_dir=log_dir,
        services=("recall",),
        extra_env={"LOG_LEVEL": "WARNING"},
        service_env={"recall": {"LOG_LEVEL": "DEBUG"}},
    )
    await platform.start(timeout=180)
    print(f"logs: {log_dir}")
    try:
        await load(platform.database_urls["recall"], LINES, CUSTOMERS)
        if explain_ms is not None:
            await explain_slow_statements(platform.database_urls["recall"], explain_ms)
        tail = RecordingTail(platform.bootstrap_servers, "recall-issued")
        async with tail:
            for number in range(rounds):
                print(f"=== round {number}:", "\n".join(await timeline(platform, tail)), flush=True)
    finally:
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notice_timeline", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explain-ms", type=int, default=None)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.rounds, arguments.explain_ms))


if __name__ == "__main__":
    main()
