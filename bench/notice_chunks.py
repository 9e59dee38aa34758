"""`python -m bench.notice_chunks`: the notifier's part of the 100k-customer recall alone,
for a quick A/B loop. The history of `bench.notices_at_scale` is loaded into a durable
embedded PostgreSQL (no broker, no relay, no service process); then the big lot is recalled
ROUNDS times, and each time `run_notifier` writes every chunk as the service does (WORKERS
chunks at a time). Printed per round: seconds from the notifier's start to the recall's
notices all written, and the backend CPU seconds PostgreSQL spent. `--explain` first prints
EXPLAIN (ANALYZE, BUFFERS) of every statement of one chunk (rolled back)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import asyncpg

from bench.measure import RECALL_SOURCE
from bench.notices_at_scale import BIG_LOT, CUSTOMERS, LINES, load
from lottrace.infra import EmbeddedPostgres, wait_until
from services.recall.app import MIGRATIONS
from services.recall.handlers import NOTICE_WORKERS, Recalls, run_notifier
from shared.contracts.events import RecallScope
from shared.runtime.database import Database, UnitOfWork
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate

_EXPLAIN_ALL = (
    "LOAD 'auto_explain'; SET LOCAL auto_explain.log_min_duration = 0;"
    " SET LOCAL auto_explain.log_analyze = on; SET LOCAL auto_explain.log_buffers = on;"
    " SET LOCAL client_min_messages = log"
)


async def _issue(database: Database, recalls: Recalls) -> str:
    async with database.transaction() as unit:
        issued = await recalls.issue(
            unit,
            reason="bench",
            classification="I",
            scope=RecallScope(lot_ids=[BIG_LOT]),
            actor="bench",
        )
    return issued.recall_id


async def _explain_a_chunk(database: Database, recalls: Recalls) -> None:
    """The plans of one chunk's statements as `notify_chunk` runs them; rolled back."""
    async with database.pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        connection.add_log_listener(_print_plan)
        try:
            await connection.execute(_EXPLAIN_ALL)
            await recalls.notify_chunk(UnitOfWork(connection, source=RECALL_SOURCE))
        finally:
            await transaction.rollback()
            connection.remove_log_listener(_print_plan)


def _print_plan(_: object, message: asyncpg.PostgresLogMessage) -> None:
    print(message.message)


async def _backend_cpu_s(database: Database) -> float:
    """CPU seconds of every backend of this database so far (pg_stat_activity's pids)."""
    pids = await database.pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    )
    return sum(_cpu_s(row["pid"]) for row in pids)


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(database: Database, recalls: Recalls, workers: int) -> tuple[float, float]:
    recall_id = await _issue(database, recalls)
    cpu = await _backend_cpu_s(database)
    started = time.perf_counter()
    notifier = asyncio.create_task(
        run_notifier(recalls, database, idle_seconds=0.05, workers=workers)
    )

    async def done() -> bool:
        return bool(
            await database.pool.fetchval(
                "SELECT notices_done_at IS NOT NULL FROM recalls WHERE recall_id = $1", recall_id
            )
        )

    try:
        await wait_until(done, timeout=300, interval=0.01, what="every notice written")
        return time.perf_counter() - started, await _backend_cpu_s(database) - cpu
    finally:
        notifier.cancel()
        await asyncio.gather(notifier, return_exceptions=True)


async def measure(url: str, rounds: int, workers: int, explain: bool) -> list[float]:
    recalls = Recalls()
    seconds = []
    async with Database(url, source=RECALL_SOURCE, min_size=1, max_size=workers + 2) as db:
        if explain:
            await _issue(db, recalls)
            await _explain_a_chunk(db, recalls)
            await db.pool.execute("UPDATE recalls SET notices_done_at = now()")
        for _ in range(rounds):
            total, cpu = await _round(db, recalls, workers)
            print(f"all chunks written in {total:.2f} s; PostgreSQL CPU {cpu:.2f} s")
            seconds.append(total)
    return seconds


async def loaded_and_measured(
    lines: int, customers: int, rounds: int, workers: int, explain: bool
) -> list[float]:
    server = EmbeddedPostgres(durable=True)
    await server.start()
    try:
        admin = await asyncpg.connect(server.url())
        await admin.execute('CREATE DATABASE "notice_chunks"')
        await admin.close()
        url = server.url("notice_chunks")
        await migrate(url, [("runtime", RUNTIME_MIGRATIONS), ("recall", MIGRATIONS)])
        await load(url, lines, customers)
        return await measure(url, rounds, workers, explain)
    finally:
        server.remove()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notice_chunks", description=__doc__)
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=NOTICE_WORKERS)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument(
        "--url", help="a recall database loaded already (by an earlier run): recall it again"
    )
    arguments = parser.parse_args()
    args = (arguments.rounds, arguments.workers, arguments.explain)
    if arguments.url:
        seconds = asyncio.run(measure(arguments.url, *args))
    else:
        seconds = asyncio.run(loaded_and_measured(arguments.lines, arguments.customers, *args))
    print(f"all chunks: median {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
