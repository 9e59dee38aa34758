"""A quick A/B loop for the order pipeline alone, with no report written: the platform, the
quick seed, the burst (`throughput`) and a steady rate (`latency`), the functions `make bench`
times, on fewer orders; then where each order's time goes per hop (`breakdown`), the lines
shipped in each second of the burst, the CPU the burst and the steady rate cost each process,
the handlers' and batches' mean seconds, and, optionally, the raw baseline.

    python -m bench.pipeline --orders 3000 --rate 250 --seconds 15 [--baseline] [--partitions 2]
        [--env CONSUMER_BATCH_TIMEOUT_MS=10] [--out runs.jsonl]

`--rate` is fixed (not half the burst's rate) so that two runs of different code compare;
`--env` sets a variable for every service. The service pids are printed at start, for
`py-spy record --pid`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaProducer

from bench import workload
from bench.measure import paced, percentile
from bench.run import (
    Tail,
    auth_headers,
    latency,
    make_platform,
    quiesce,
    raw_baseline,
    seed,
    throughput,
)
from bench.workload import QUICK
from lottrace.devstack import Platform
from shared.contracts.envelope import encode
from shared.contracts.events import OrderPlaced

STEPS = (
    "placed",
    "allocated_emitted",
    "allocated_sent",
    "allocated_read",
    "shipped_emitted",
    "shipped_sent",
    "shipped_read",
)
Marks = dict[str, dict[str, float]]  # order id -> step -> wall-clock seconds


async def breakdown(
    bootstrap: str, orders: list[OrderPlaced], *, lines_per_s: float
) -> dict[str, Any]:
    """Where the time of each order goes, per hop, at a steady rate (p50, p99 in ms): from the
    wall-clock times the pipeline leaves behind (the event's `time`, set when the handler
    emits it; the record's timestamp, set when the relay hands it to the producer)."""
    per_order = lines_per_s / (sum(len(o.lines) for o in orders) / len(orders))
    marks: Marks = defaultdict(dict)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    async with (
        Tail(bootstrap, "lot-allocated") as allocated,
        Tail(bootstrap, "order-shipped") as shipped,
    ):
        done = asyncio.Event()
        wanted = {order.order_id for order in orders}
        tasks = [
            asyncio.create_task(_collect(tail, name, marks, wanted, done))
            for tail, name in ((allocated, "allocated"), (shipped, "shipped"))
        ]
        async for _, order in paced(orders, per_order):
            message = encode(order, source="/bench/oms")
            marks[order.order_id]["placed"] = time.time()
            await producer.send(
                message.topic, message.value, key=message.key, headers=message.headers
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 60)
        for task in tasks:
            task.cancel()
        await producer.stop()
    return _hops(marks)


async def _collect(
    tail: Tail, name: str, marks: Marks, wanted: set[str], done: asyncio.Event
) -> None:
    while True:
        for record in await tail.read(timeout_ms=100):
            arrived = time.time()
            event = json.loads(record.value)
            if event["data"]["order_id"] not in wanted:
                continue
            mark = marks[event["data"]["order_id"]]
            mark.setdefault(f"{name}_emitted", _epoch(event["time"]))
            mark.setdefault(f"{name}_sent", record.timestamp / 1000)
            mark.setdefault(f"{name}_read", arrived)
            if sum("shipped_read" in m for m in marks.values()) >= len(wanted):
                done.set()


def _hops(marks: Marks) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for before, after in [*itertools.pairwise(STEPS), (STEPS[0], STEPS[-1])]:
        values = [
            (m[after] - m[before]) * 1000 for m in marks.values() if before in m and after in m
        ]
        figures[f"{before}->{after}"] = (
            round(percentile(values, 0.5)),
            round(percentile(values, 0.99)),
        )
    return figures


async def handler_seconds(platform: Platform) -> dict[str, str]:
    """Per service and event type (and whole batches): count and mean seconds so far."""
    figures: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10, headers=auth_headers(platform)) as client:
        for name in ("inventory", "fulfillment"):
            text = (await client.get(f"{platform.urls()[name]}/metrics")).text
            sums: dict[str, float] = {}
            counts: dict[str, float] = {}
            for line in text.splitlines():
                for metric in ("lottrace_handler_seconds", "lottrace_consumer_batch_seconds"):
                    if line.startswith((f"{metric}_sum", f"{metric}_count")):
                        key, value = line.rsplit(" ", 1)
                        label = key.split("{", 1)[1].rstrip("}") if "{" in key else "batch"
                        bucket = sums if "_sum" in key else counts
                        bucket[label] = float(value)
            for label, total in sums.items():
                count = counts.get(label, 0) or 1
                figures[f"{name} {label}"] = f"{int(count)} x {total / count * 1000:.1f} ms"
    return figures


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def print_progress(description: str, total: int) -> Callable[[int], None]:
    print(f"{time.strftime('%H:%M:%S')} {description} ({total})", flush=True)
    return lambda n: None


async def measure(
    orders: int,
    rate: float,
    seconds: float,
    baseline: bool,
    env: dict[str, str],
    partitions: int | None = None,
) -> dict[str, Any]:
    rng = random.Random(2026)
    platform = make_platform(Path(tempfile.mkdtemp(prefix="lottrace-pipeline-")))
    platform.extra_env = {**platform.extra_env, **env}
    platform.partitions = partitions or platform.partitions
    try:
        await platform.start(timeout=180)
        pids = {name: process.pid for name, process in platform.processes.items()}
        print(f"pids: {json.dumps(pids)}", flush=True)
        seeded = await seed(platform, QUICK, rng, print_progress)
        skus = seeded["skus"]
        results = await _burst(platform, workload.orders("TP", orders, skus, QUICK, rng))
        before = platform_cpu_seconds(platform)
        steady = await latency(
            platform.bootstrap_servers,
            workload.orders("LAT", int(rate / 3 * seconds), skus, QUICK, rng),
            lines_per_s=rate,
            progress=print_progress,
        )
        results["steady_cpu_s"] = cpu_spent(before, platform_cpu_seconds(platform))
        results |= {
            "p50_ms": round(steady["p50_ms"]),
            "p99_ms": round(steady["p99_ms"]),
            "max_ms": round(steady["max_ms"]),
            "latency_shipped": f"{steady['orders_shipped']}/{steady['orders']}",
        }
        results["breakdown_ms_p50_p99"] = await breakdown(
            platform.bootstrap_servers,
            workload.orders("BD", int(rate / 3 * seconds), skus, QUICK, rng),
            lines_per_s=rate,
        )
        results["handlers"] = await handler_seconds(platform)
        if baseline:
            raw = await raw_baseline(
                platform, workload.orders("RAW", orders, skus, QUICK, rng), print_progress
            )
            results["baseline_lines_per_s"] = round(raw["order_lines_per_s"])
            results["ratio"] = round(results["lines_per_s"] / raw["order_lines_per_s"], 3)
        return results
    finally:
        platform.stop()


async def _burst(platform: Platform, orders: list[OrderPlaced]) -> dict[str, Any]:
    """Every order at once: order lines shipped a second, and the CPU inventory and
    fulfillment spent per order line until they had consumed all it caused."""
    before = platform_cpu_seconds(platform)
    burst = await throughput(
        platform.bootstrap_servers, orders, progress=print_progress, label="burst"
    )
    await quiesce(platform)
    cpu = cpu_spent(before, platform_cpu_seconds(platform))
    return {
        "lines_per_s": burst["order_lines_per_s"],
        "shipped": f"{burst['order_lines_shipped']}/{burst['order_lines']}",
        "timeline": [round(lines) for lines in burst["timeline"]],
        "cpu_ms_per_line": {
            name: round(seconds * 1000 / burst["order_lines"], 3) for name, seconds in cpu.items()
        },
    }


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part spent between two `platform_cpu_seconds` readings."""
    return {name: round(seconds - before.get(name, 0.0), 2) for name, seconds in after.items()}


def platform_cpu_seconds(platform: Platform) -> dict[str, float]:
    """User and system CPU seconds so far of each service, the broker, and PostgreSQL with all
    its backends; the burst's figure is the difference of two of these."""
    services = {process.pid: name for name, process in platform.processes.items()}
    totals: dict[str, float] = defaultdict(float)
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            name = services.get(process.pid) or _platform_part(process.name())
            totals[name] += sum(process.cpu_times()[:2])
    totals["bench client"] = sum(psutil.Process().cpu_times()[:2])
    return dict(totals)


def _platform_part(process_name: str) -> str:
    for part in ("postgres", "tansu"):
        if part in process_name:
            return part
    return process_name


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--orders", type=int, default=3_000, help="orders in the burst")
    parser.add_argument("--rate", type=float, default=700.0, help="steady order lines/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="steady run length")
    parser.add_argument("--baseline", action="store_true", help="also time the raw baseline")
    parser.add_argument("--partitions", type=int, default=None, help="partitions a topic")
    parser.add_argument("--env", action="append", default=[], help="NAME=value for services")
    parser.add_argument("--out", type=Path, default=None, help="append the results here")
    arguments = parser.parse_args()
    env = dict(pair.split("=", 1) for pair in arguments.env)
    results = asyncio.run(
        measure(
            arguments.orders,
            arguments.rate,
            arguments.seconds,
            arguments.baseline,
            env,
            arguments.partitions,
        )
    )
    results["env"] = env
    print(json.dumps(results), flush=True)
    if arguments.out:
        with arguments.out.open("a") as out:
            out.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
