"""`python -m bench.notices_at_scale`: the 100k-customer recall's notices, quickly, again and
again. The recall service runs alone on its broker and PostgreSQL, as in `make bench`'s
recall at scale, but its history (the big lot shipped once to each of CUSTOMERS customers,
among LINES shipment lines in all) is loaded set-based straight into its tables instead of
through `order-shipped`, so a run takes a minute, not five. Then the big lot is recalled
ROUNDS times; for each: the seconds from the request to the last notice read from the topic,
and where they went (the notifier writing the chunks, the relay and consumer after it), with
the CPU each process spent a notice: the recall service, PostgreSQL, the broker and this
reader share the machine's cores."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from bench.pipeline import platform_cpu_seconds
from bench.run import Tail, make_platform, recall_and_hear
from lottrace.devstack import Platform

LINES = 1_000_000
CUSTOMERS = 100_000
LINES_PER_SHIPMENT = 5
OTHER_LOTS = 2_000
BIG_LOT = uuid.UUID("00000000-0000-4000-8000-000000000001")

# $1 lines, $2 big-lot customers, $3 other lots; shipments of 5 lines, the first $2 of them
# with the big lot as line 1, customers and lines in a shuffled physical order.
_LOAD = [
    f"""INSERT INTO lots (lot_id, lot_code, sku, received_quantity, received)
        VALUES ('{BIG_LOT}', 'OJ-BIG-0001', 'OJ-1L', 10000000, true)""",
    """INSERT INTO lots (lot_id, lot_code, sku, received_quantity, received)
       SELECT md5('other-' || k)::uuid, 'LOT-' || lpad(k::text, 5, '0'),
              'SKU-' || lpad((k % 300)::text, 4, '0'), 10000000, true
       FROM generate_series(0, $3 - 1) k""",
    """INSERT INTO customers (customer_id, name)
       SELECT id, 'Customer ' || id FROM (
           SELECT 'BIG-' || lpad(c::text, 7, '0') AS id FROM generate_series(0, $2 - 1) c
           UNION ALL
           SELECT 'OTHER-' || lpad(c::text, 7, '0') FROM generate_series(1, $2 * 2) c
       ) ids ORDER BY random()""",
    f"""INSERT INTO shipment_lines (shipment_id, line_no, lot_id, order_id, customer_id, sku,
                                   lot_code, quantity, uom, shipped_at)
        SELECT 'SH-' || lpad(s::text, 8, '0'), l,
               CASE WHEN l = 1 AND s < $2 THEN '{BIG_LOT}'::uuid
                    ELSE md5('other-' || (s * 7 + l * 13) % $3)::uuid END,
               'SO-' || lpad(s::text, 8, '0'),
               CASE WHEN s < $2 THEN 'BIG-' || lpad(s::text, 7, '0')
                    ELSE 'OTHER-' || lpad((1 + s % ($2 * 2))::text, 7, '0') END,
               CASE WHEN l = 1 AND s < $2 THEN 'OJ-1L'
                    ELSE 'SKU-' || lpad(((s * 7 + l * 13) % $3 % 300)::text, 4, '0') END,
               CASE WHEN l = 1 AND s < $2 THEN 'OJ-BIG-0001'
                    ELSE 'LOT-' || lpad(((s * 7 + l * 13) % $3)::text, 5, '0') END,
               1 + (s + l) % 6, 'EA', now() - interval '1 minute' * ((s * 31 + l) % 40000)
        FROM generate_series(0, $1 / 5 - 1) s, generate_series(1, 5) l
        ORDER BY random()""",
    "VACUUM ANALYZE",
]


async def load(url: str, lines: int, customers: int) -> None:
    sizes = {"$1": str(lines), "$2": str(customers), "$3": str(OTHER_LOTS)}
    connection = await asyncpg.connect(url)
    try:
        for template in _LOAD:
            statement = template
            for name, value in sizes.items():
                statement = statement.replace(name, value)
            await connection.execute(statement)
    finally:
        await connection.close()


async def recall_once(platform: Platform, tail: Tail) -> dict[str, Any]:
    """Recall the big lot; seconds to the answer, the summary, the last notice read, and the
    CPU each part of the platform (and this reader) spent a notice meanwhile."""
    before = platform_cpu_seconds(platform)
    heard = await recall_and_hear(platform, tail, str(BIG_LOT), reason="bench")
    after = platform_cpu_seconds(platform)
    written = await _written_s(platform.database_urls["recall"], heard.recall_id)
    notices = max(len(heard.notice_s), 1)
    return {
        "notices": len(heard.notice_s),
        "cpu_us_per_notice": {
            part: round((seconds - before.get(part, 0.0)) * 1e6 / notices, 1)
            for part, seconds in after.items()
        },
        "summary_s": heard.summary_s,
        "all_notices_s": heard.done_s,
        "chunks_written_s": written,
        "per_second": heard.per_second(),
    }


async def _written_s(url: str, recall_id: str) -> float:
    """Seconds from the recall's issue to the start of its last chunk's transaction
    (`notified_at` is `now()`): the notifier's part, less the last chunk's own time."""
    connection = await asyncpg.connect(url)
    try:
        seconds = await connection.fetchval(
            "SELECT extract(epoch FROM max(c.notified_at) - r.issued_at)::float8"
            " FROM recalls r JOIN recall_chunks c USING (recall_id) WHERE recall_id = $1"
            " GROUP BY r.issued_at",
            recall_id,
        )
        return float(seconds)
    finally:
        await connection.close()


async def measure(
    lines: int, customers: int, rounds: int, py_spy: Path | None = None
) -> list[dict[str, Any]]:
    log_dir = Path(tempfile.mkdtemp(prefix="lottrace-bench-notices-"))
    platform = make_platform(log_dir, services=("recall",))
    await platform.start(timeout=180)
    try:
        started = time.monotonic()
        await load(platform.database_urls["recall"], lines, customers)
        print(f"loaded {lines:,} lines in {time.monotonic() - started:.1f} s")
        results = []
        async with Tail(platform.bootstrap_servers, "recall-issued") as tail:
            for number in range(rounds):
                if py_spy is not None and number == rounds - 1:
                    _profile(platform.processes["recall"].pid or 0, py_spy)
                result = await recall_once(platform, tail)
                print(json.dumps(result))
                results.append(result)
        return results
    finally:
        platform.stop()


def _profile(pid: int, out: Path) -> None:
    """py-spy on the service for the round that starts now (it stops on its own)."""
    command = ["py-spy", "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-d", "25"]
    subprocess.Popen([str(Path(sys.executable).parent / command[0]), *command[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notices_at_scale", description=__doc__)
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--py-spy", type=Path, default=None, help="profile the last round")
    arguments = parser.parse_args()
    results = asyncio.run(
        measure(arguments.lines, arguments.customers, arguments.rounds, arguments.py_spy)
    )
    for key in ("all_notices_s", "chunks_written_s"):
        print(f"{key}: median {statistics.median(r[key] for r in results):.2f}")


if __name__ == "__main__":
    main()
