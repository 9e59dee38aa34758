"""`python -m bench.scaling`: how trace and allocation cost grow with a company's history.

For each history size (shipment lines), a recall and an inventory database on one embedded
PostgreSQL get that history loaded set-based, straight into the tables their migrations made
(`generate_series` inserts, no broker; `bench/history.py`): lots of LINES_PER_LOT shipment
lines each, received over two years, some made from others; customers; closed orders whose
lines all shipped, with their lot history. Inventory also gets today's stock through its own
handler. All sizes are loaded first, then measured in rounds, a slice of each measurement on
each size in turn, so that a machine whose load changes weighs on every size alike. Timed:
- trace: the recall service's forward and backward trace routes, called in process (no HTTP
  or auth in the figure), for random lots of the history;
- allocation: batches of new orders through inventory's `on_order_placed`, each batch one
  transaction as the consumer runs it (FEFO, reservations, lot history, outbox), committed.
What matters is the ratio of each cost to the cost at the smallest history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from bench import history, report, workload
from bench.measure import percentile
from lottrace.infra import EmbeddedPostgres
from services.inventory.handlers import Inventory
from services.recall import api as recall_api
from services.recall.app import MIGRATIONS as RECALL_MIGRATIONS
from shared.contracts.envelope import Incoming
from shared.contracts.events import GoodsReceived
from shared.runtime.database import Database
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate

TRACED_LOTS = 200
ORDERS_PER_BATCH = 200  # about 600 order lines: a consumer batch of order-placed
ROUNDS = 16  # each: 12 lots traced and one batch allocated on every history, in turn
INVENTORY_MIGRATIONS = Path(__file__).parent.parent / "services" / "inventory" / "migrations"
LOADING_MS = 3_600_000  # one statement loads a 10M-line table
SIZES = (100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
SCALE_SIZES = (100_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class Point:
    """The costs measured on one history size."""

    shipment_lines: int
    load_s: float
    trace_forward_p99_ms: float
    trace_backward_p99_ms: float
    trace_p99_ms: float
    trace_p50_ms: float
    allocation_us_per_line: float
    allocation_us_per_line_min: float
    allocation_us_per_line_max: float


@contextlib.asynccontextmanager
async def _database(
    server: EmbeddedPostgres, name: str, migrations: Path
) -> AsyncIterator[Database]:
    """A new database `name` with the runtime's and these migrations, dropped after the block."""
    await server.create_database(name)
    url = server.url(name)
    service = name.split("_", maxsplit=1)[0]
    try:
        await migrate(url, [("runtime", RUNTIME_MIGRATIONS), (service, migrations)])
        async with Database(
            url, source=f"/bench/{name}", min_size=1, max_size=2, statement_timeout_ms=LOADING_MS
        ) as database:
            yield database
    finally:
        await server.drop_database(name)


def _request(database: Database) -> Request:
    """What the trace routes read from a request: the service's database."""
    runtime = SimpleNamespace(database=database)
    return Request({"type": "http", "app": SimpleNamespace(state=SimpleNamespace(runtime=runtime))})


@dataclass
class Timings:
    """What one history's rounds measured so far."""

    forward_ms: list[float] = field(default_factory=list)
    backward_ms: list[float] = field(default_factory=list)
    allocation_us_per_line: list[float] = field(default_factory=list)


@dataclass
class History:
    """One history size, loaded: its recall and inventory databases and what was timed."""

    lines: int
    lots: int
    load_s: float
    recall: Database
    inventory: Database
    timings: Timings = field(default_factory=Timings)
    allocator: Inventory = field(default_factory=Inventory)

    def point(self) -> Point:
        t = self.timings
        return Point(
            shipment_lines=self.lines,
            load_s=self.load_s,
            trace_forward_p99_ms=percentile(t.forward_ms, 0.99),
            trace_backward_p99_ms=percentile(t.backward_ms, 0.99),
            trace_p99_ms=percentile(t.forward_ms + t.backward_ms, 0.99),
            trace_p50_ms=percentile(t.forward_ms + t.backward_ms, 0.50),
            allocation_us_per_line=percentile(t.allocation_us_per_line, 0.5),
            allocation_us_per_line_min=min(t.allocation_us_per_line),
            allocation_us_per_line_max=max(t.allocation_us_per_line),
        )


@contextlib.asynccontextmanager
async def loaded_history(
    server: EmbeddedPostgres, lines: int, rng: random.Random
) -> AsyncIterator[History]:
    """A history of `lines` shipment lines in both databases, with today's stock."""
    async with (
        _database(server, f"recall_{lines}", RECALL_MIGRATIONS) as recall,
        _database(server, f"inventory_{lines}", INVENTORY_MIGRATIONS) as inventory,
    ):
        started = time.perf_counter()
        lots = await history.load_recall(recall, lines)
        await history.load_inventory(inventory, lines)
        load_s = time.perf_counter() - started
        result = History(lines, lots, load_s, recall, inventory)
        async with inventory.transaction() as unit:
            stock = [Incoming.direct(lot, source="/bench") for lot in _current_stock(rng)]
            await result.allocator.on_goods_received(unit, stock)
        yield result


async def trace_round(loaded: History, lots: int, rng: random.Random, *, keep: bool) -> None:
    """The forward and backward trace of `lots` random lots of the history."""
    request = _request(loaded.recall)
    for k in rng.sample(range(loaded.lots), min(lots, loaded.lots)):
        lot_id = history.lot_uuid(k)
        started = time.perf_counter()
        await recall_api.trace_forward(lot_id, request, shipments_limit=10_000)
        forward = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        await recall_api.trace_backward(lot_id, request)
        backward = (time.perf_counter() - started) * 1000
        if keep:
            loaded.timings.forward_ms.append(forward)
            loaded.timings.backward_ms.append(backward)


def _current_stock(rng: random.Random) -> list[GoodsReceived]:
    """Today's stock: every SKU's lots, fresh, plenty of each."""
    now = datetime.now(UTC)
    return [
        GoodsReceived(
            receipt_id=f"RC-NOW-{sku}-{n}",
            lot_id=history.current_lot_uuid(sku, n),
            lot_code=f"NOW-{sku}-{n}",
            sku=history.sku(sku),
            quantity=10_000_000,
            received_at=now - timedelta(days=rng.randint(1, 20)),
            expiry_date=(now + timedelta(days=rng.randint(60, 365))).date(),
        )
        for sku in range(history.SKUS)
        for n in range(history.CURRENT_LOTS_PER_SKU)
    ]


async def allocation_round(loaded: History, rng: random.Random, tag: str, *, keep: bool) -> None:
    """One batch of new orders through `on_order_placed`, one committed transaction."""
    skus = [history.sku(n) for n in range(history.SKUS)]
    size = workload.Size(name="scaling", skus=history.SKUS, lots_per_sku=1, customers=5_000)
    orders = workload.orders(tag, ORDERS_PER_BATCH, skus, size, rng)
    events = [Incoming.direct(order, source="/bench/oms") for order in orders]
    started = time.perf_counter()
    async with loaded.inventory.transaction() as unit:
        await loaded.allocator.on_order_placed(unit, events)
    seconds = time.perf_counter() - started
    if keep:
        lines = sum(len(order.lines) for order in orders)
        loaded.timings.allocation_us_per_line.append(seconds * 1e6 / lines)


async def measure_rounds(histories: Sequence[History], rng: random.Random) -> None:
    """Round after round, a slice of every measurement on every history in turn, so that a
    machine whose load changes meanwhile weighs on every size alike; the first round warms
    caches and statement caches up and is not kept."""
    for number in range(ROUNDS + 1):
        for loaded in histories:
            keep = number > 0
            await trace_round(loaded, TRACED_LOTS // ROUNDS if keep else 5, rng, keep=keep)
            await allocation_round(loaded, rng, f"SC{loaded.lines}-{number}", keep=keep)


def ratios(points: Sequence[Point]) -> dict[str, dict[str, float]]:
    """Each size's cost over the smallest size's: trace p99 and allocation per line."""
    first = points[0]
    return {
        f"{point.shipment_lines}/{first.shipment_lines}": {
            "trace_p99": point.trace_p99_ms / first.trace_p99_ms,
            "trace_p50": point.trace_p50_ms / first.trace_p50_ms,
            "trace_forward_p99": point.trace_forward_p99_ms / first.trace_forward_p99_ms,
            "trace_backward_p99": point.trace_backward_p99_ms / first.trace_backward_p99_ms,
            "allocation_per_line": point.allocation_us_per_line / first.allocation_us_per_line,
        }
        for point in points[1:]
    }


async def measure(sizes: Sequence[int], seed: int = 2026) -> dict[str, Any]:
    rng = random.Random(seed)
    server = EmbeddedPostgres(durable=False, settings=history.SERVER_SETTINGS)
    await server.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            histories = [
                await stack.enter_async_context(loaded_history(server, lines, rng))
                for lines in sizes
            ]
            await measure_rounds(histories, rng)
            points = [h.point() for h in histories]
    finally:
        server.remove()  # stops it and deletes its throwaway data folder
    return {
        "lines_per_lot": history.LINES_PER_LOT,
        "orders_per_batch": ORDERS_PER_BATCH,
        "rounds": ROUNDS,
        "points": [asdict(point) for point in points],
        "ratios": ratios(points),
    }


def _print(result: dict[str, Any]) -> None:
    for point in result["points"]:
        print(
            f"{point['shipment_lines']:>11,} lines: loaded in {point['load_s']:6.1f} s,"
            f" trace p99 {point['trace_p99_ms']:6.2f} ms (forward"
            f" {point['trace_forward_p99_ms']:.2f}, backward {point['trace_backward_p99_ms']:.2f}),"
            f" allocation {point['allocation_us_per_line']:6.0f} us/line"
        )
    for name, ratio in result["ratios"].items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))


def _publish_scale(result: dict[str, Any]) -> None:
    """`make bench-scale`: keep the result beside latest.json and redraw the page with it."""
    report.SCALE_JSON.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    latest = report.SCALE_JSON.parent / "latest.json"
    if latest.exists():
        results = json.loads(latest.read_text())
        previous = report.previous_results(latest, results["size"])
        report.render(results, docs=Path("docs"), command="make bench", previous=previous)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument(
        "--scale", action="store_true", help="100k, 1M and 10M lines into bench/results/scale.json"
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON")
    arguments = parser.parse_args()
    sizes = SCALE_SIZES if arguments.scale else arguments.sizes
    result = asyncio.run(measure(sizes))
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _print(result)
    if arguments.scale:
        _publish_scale(result)
    if arguments.out:
        arguments.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
