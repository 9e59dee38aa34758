"""A quick A/B loop for `make bench`'s trace figure (`traces()` in bench/run.py), with no report
written: the recall service alone on a platform, given the full size's history straight
through its topics (2,400 lots of 300 SKUs, each SKU's shipments on one lot as FEFO leaves
them, ten ingredient lots and twenty juice lots made from two of them each), then the same
530 lots `make bench` picks (500 random ones, the juice and the ingredient lots) traced forward
and backward over HTTP, one call at a time, by kind of lot and direction; then the same routes
called in process (no HTTP or auth) on the same database, to tell SQL and Python from HTTP.

    python -m bench.traces [--rounds 3] [--compare DIR] [--out runs.jsonl]

`--compare DIR` starts a second recall service from another copy of the code (`git archive
<commit> | tar -x -C DIR`) on the same database and alternates the two call by call, so that
a machine whose load changes weighs on both alike. The pids are printed, for
`py-spy record --pid`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
import psutil
from starlette.requests import Request

from bench.http_timing import TimedClients
from bench.measure import percentile, wait_caught_up
from bench.run import auth_headers, make_platform, produce
from bench.workload import FULL, customer
from lottrace.devstack import Platform
from lottrace.infra import free_port, wait_until
from services.recall import api as recall_api
from shared.contracts.envelope import encode
from shared.contracts.events import GoodsReceived, OrderShipped
from shared.runtime.database import Database

# About the order lines the full run has shipped when it traces: the burst and the steady rate.
SHIPMENT_LINES = 117_000
RANDOM_LOTS = FULL.traces


@dataclass(frozen=True)
class History:
    """The lots to trace, by kind, and what was published."""

    lots: list[GoodsReceived]
    shipped: set[UUID]  # the lots with shipment lines: one a SKU
    juice: list[GoodsReceived]
    ingredients: list[GoodsReceived]
    shipments: list[OrderShipped]


def _lot(sku: str, code: str, now: datetime, days: int, **more: Any) -> GoodsReceived:
    return GoodsReceived(
        receipt_id=f"RC-{code}",
        lot_id=uuid.uuid4(),
        lot_code=code,
        sku=sku,
        quantity=FULL.lot_quantity,
        received_at=now - timedelta(days=30),
        expiry_date=(now + timedelta(days=days)).date(),
        supplier={"supplier_id": f"SUP-{len(code) % 40:02d}"},
        purchase_order=f"PO-{code}",
        **more,
    )


def history(rng: random.Random) -> History:
    now = datetime.now(UTC)
    skus = [f"SKU-{n:04d}" for n in range(FULL.skus)]
    lots = [
        _lot(sku, f"L-{sku}-{n}", now, rng.randint(20, 365))
        for sku in skus
        for n in range(FULL.lots_per_sku)
    ]
    shipped_lot = {sku: rng.choice(lots[i * 8 : i * 8 + 8]) for i, sku in enumerate(skus)}
    ingredients = [_lot(f"ORANGES-{n}", f"FARM-{n}", now, 30) for n in range(10)]
    juice = [
        _lot(
            skus[n], f"JUICE-{n}", now, 200, inputs=[_input(i) for i in rng.sample(ingredients, 2)]
        )
        for n in range(20)
    ]
    shipments: list[OrderShipped] = []
    lines = 0
    while lines < SHIPMENT_LINES:
        chosen = rng.sample(skus, rng.randint(1, 5))
        shipments.append(_shipment(len(shipments), chosen, shipped_lot, rng, now))
        lines += len(chosen)
    shipped = {lot.lot_id for lot in shipped_lot.values()}
    return History(lots, shipped, juice, ingredients, shipments)


def _input(lot: GoodsReceived) -> dict[str, Any]:
    return {"lot_id": lot.lot_id, "lot_code": lot.lot_code, "sku": lot.sku, "quantity": 100}


def _shipment(
    n: int,
    skus: Sequence[str],
    lot_of: dict[str, GoodsReceived],
    rng: random.Random,
    now: datetime,
) -> OrderShipped:
    buyer = customer(rng, FULL.customers)
    return OrderShipped(
        shipment_id=f"SH-{n:08d}",
        order_id=f"TP-{n:07d}",
        customer={"customer_id": buyer["customer_id"], "name": buyer["name"]},
        shipped_at=now - timedelta(seconds=rng.randint(1, 3_000)),
        lines=[
            {
                "line_no": i + 1,
                "sku": sku,
                "lot_id": lot_of[sku].lot_id,
                "lot_code": lot_of[sku].lot_code,
                "quantity": rng.randint(1, 4),
            }
            for i, sku in enumerate(skus)
        ],
    )


async def load(platform: Platform, seeded: History) -> None:
    lots = [*seeded.lots, *seeded.ingredients, *seeded.juice]
    await produce(platform.bootstrap_servers, [encode(lot, source="/bench") for lot in lots])
    await produce(
        platform.bootstrap_servers, [encode(s, source="/bench") for s in seeded.shipments]
    )
    await wait_caught_up(
        platform.bootstrap_servers, "recall", ["goods-received", "order-shipped"], timeout=900
    )


def picked(seeded: History, rng: random.Random) -> list[tuple[str, UUID]]:
    """The lots `make bench` traces, as (kind, lot id): random ones (`shipped` when they have
    shipment lines, some 400 each), juice, ingredients."""
    return [
        *(
            ("shipped" if lot.lot_id in seeded.shipped else "random", lot.lot_id)
            for lot in rng.sample(seeded.lots, RANDOM_LOTS)
        ),
        *(("juice", lot.lot_id) for lot in seeded.juice),
        *(("ingredient", lot.lot_id) for lot in seeded.ingredients),
    ]


Timings = dict[str, dict[str, list[float]]]  # code -> "kind direction" -> ms


async def over_http(urls: dict[str, str], headers: dict[str, str], lots: Sequence[Any]) -> Timings:
    """Each lot forward then backward, one call at a time, on each code in turn, timed by the
    client `make bench` times traces with."""
    timings: Timings = {code: defaultdict(list) for code in urls}
    async with TimedClients(headers) as clients:
        for kind, lot_id in lots:
            for direction in ("forward", "backward"):
                for code, url in urls.items():
                    elapsed = await clients.get_ms(
                        "aiohttp", f"{url}/trace/lots/{lot_id}/{direction}"
                    )
                    timings[code][f"{kind} {direction}"].append(elapsed)
    return timings


async def in_process(database_url: str, lots: Sequence[Any]) -> dict[str, list[float]]:
    """The same routes called as functions, on a pool of this process."""
    timings: dict[str, list[float]] = defaultdict(list)
    async with Database(database_url, source="/bench/traces", min_size=1, max_size=2) as database:
        runtime = SimpleNamespace(database=database)
        app = SimpleNamespace(state=SimpleNamespace(runtime=runtime))
        request = Request({"type": "http", "app": app})
        for kind, lot_id in lots:
            started = time.perf_counter()
            await recall_api.trace_forward(lot_id, request, shipments_limit=10_000)
            timings[f"{kind} forward"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await recall_api.trace_backward(lot_id, request)
            timings[f"{kind} backward"].append((time.perf_counter() - started) * 1000)
    return timings


def figures(timings: dict[str, list[float]]) -> dict[str, Any]:
    """p50/p90/p99/max per kind and direction, and over all calls as `make bench` counts."""
    every = [ms for values in timings.values() for ms in values]
    forward = [ms for key, values in timings.items() if "forward" in key for ms in values]
    result = {
        key: [round(percentile(values, q), 2) for q in (0.5, 0.9, 0.99, 1.0)]
        for key, values in sorted(timings.items())
    }
    return result | {
        "all p50": round(percentile(every, 0.5), 2),
        "all p99": round(percentile(every, 0.99), 2),
        "forward p99": round(percentile(forward, 0.99), 2),
    }


def paired(timings: Timings) -> dict[str, float]:
    """Per kind and direction, the median of new minus old, call by call (ms): the two calls
    of a pair ran back to back, so most of the machine's noise cancels out."""
    return {
        key: round(
            percentile([n - o for n, o in zip(new, timings["old"][key], strict=True)], 0.5), 2
        )
        for key, new in sorted(timings["new"].items())
    }


def start_other(platform: Platform, code: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A second recall service from another copy of the code, on the same database."""
    port = free_port()
    env = platform.environment("recall") | {"RECALL_HTTP_PORT": str(port)}
    env["PYTHONPATH"] = str(code)
    log = (platform.log_dir or Path(tempfile.gettempdir())) / "recall-compared.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "services.recall"],
        cwd=code,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


async def _ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=3) as client:

        async def ready() -> bool:
            try:
                return (await client.get(f"{url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout=120, interval=0.2, what=f"{url} ready")


async def measure(rounds: int, compare: Path | None) -> dict[str, Any]:
    rng = random.Random(2026)
    platform = make_platform(
        Path(tempfile.mkdtemp(prefix="lottrace-traces-")), services=("recall",)
    )
    other: subprocess.Popen[bytes] | None = None
    try:
        await platform.start(timeout=180)
        seeded = history(rng)
        print(f"{time.strftime('%H:%M:%S')} loading {len(seeded.shipments)} shipments", flush=True)
        await load(platform, seeded)
        urls = {"new": platform.urls()["recall"]}
        if compare is not None:
            other, urls["old"] = start_other(platform, compare)
            await _ready(urls["old"])
        pids = {"new": platform.processes["recall"].pid, "old": other.pid if other else None}
        print(f"pids: {json.dumps(pids)}", flush=True)
        lots = picked(seeded, rng)
        await over_http(urls, auth_headers(platform), lots[:50])  # warm up
        results: dict[str, Any] = {"rounds": []}
        servers = {code: psutil.Process(pid) for code, pid in pids.items() if pid}
        for number in range(rounds):
            cpu = {code: sum(server.cpu_times()[:2]) for code, server in servers.items()}
            timed = await over_http(urls, auth_headers(platform), lots)
            round_figures = {code: figures(t) for code, t in timed.items()}
            for code, server in servers.items():
                spent = sum(server.cpu_times()[:2]) - cpu[code]
                round_figures[code]["service cpu ms a call"] = round(spent * 500 / len(lots), 2)
            if compare is not None:
                round_figures["new minus old, median"] = paired(timed)
            print(json.dumps({"round": number, **round_figures}), flush=True)
            results["rounds"].append(round_figures)
        local = await in_process(platform.database_urls["recall"], lots)
        results["in_process"] = figures(local)
        return results
    finally:
        if other is not None:
            other.terminate()
            other.wait(20)
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.traces", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="times the 530 lots are traced")
    parser.add_argument("--compare", type=Path, default=None, help="another copy of the code")
    parser.add_argument("--out", type=Path, default=None, help="append the results here")
    arguments = parser.parse_args()
    results = asyncio.run(measure(arguments.rounds, arguments.compare))
    results["date"] = date.today().isoformat()
    results["pid"] = os.getpid()
    print(json.dumps(results["in_process"]), flush=True)
    if arguments.out:
        with arguments.out.open("a") as out:
            out.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
