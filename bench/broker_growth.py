"""How the embedded broker's CPU moves with time at a constant rate, with no report written:
the platform idle (what polling alone costs), then the quick seed and orders produced at a
steady rate as an order system would (linger 5 ms), then idle again; the share of a core each
process used in each window.

    python -m bench.broker_growth [--partitions 1] [--orders-per-s 200] [--seconds 90]
        [--window 15]

Tansu's memory store lists every batch a partition holds on each fetch that finds data, so
at a constant rate its share climbs window after window as its log grows, and the services
get less of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import workload
from bench.measure import paced
from bench.pipeline import cpu_spent, platform_cpu_seconds, print_progress
from bench.run import make_platform, seed
from bench.workload import QUICK
from lottrace.devstack import Platform
from shared.contracts.envelope import encode
from shared.contracts.events import OrderPlaced


async def measure(partitions: int, orders_per_s: float, seconds: float, window: float) -> None:
    platform = make_platform(Path(tempfile.mkdtemp(prefix="lottrace-broker-growth-")))
    platform.partitions = partitions
    try:
        await platform.start(timeout=180)
        await _report_windows(platform, "idle", window, asyncio.sleep(window))
        seeded = await seed(platform, QUICK, random.Random(7), print_progress)
        orders = workload.orders(
            "GROWTH", int(orders_per_s * seconds), seeded["skus"], QUICK, random.Random(8)
        )
        produced = _produce(platform.bootstrap_servers, orders, orders_per_s)
        await _report_windows(platform, "steady", window, produced)
        await _report_windows(platform, "idle after", window, asyncio.sleep(window))
    finally:
        platform.stop()


async def _produce(bootstrap: str, orders: list[OrderPlaced], per_s: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        messages = [encode(order, source="/bench/oms") for order in orders]
        async for _, message in paced(messages, per_s, started=time.monotonic()):
            await producer.send(
                message.topic, message.value, key=message.key, headers=message.headers
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _report_windows(
    platform: Platform, phase: str, window: float, work: Awaitable[Any]
) -> None:
    """Print each process's share of a core (%) in each `window` seconds until `work` ends."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            before = platform_cpu_seconds(platform)
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), window)
            spent = cpu_spent(before, platform_cpu_seconds(platform))
            elapsed = time.monotonic() - started
            shares = {name: round(100 * s / elapsed) for name, s in spent.items()}
            print(json.dumps({"phase": phase, "seconds": round(elapsed, 1), **shares}), flush=True)
        await task
    finally:
        task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_growth", description=__doc__)
    parser.add_argument("--partitions", type=int, default=1, help="partitions a topic")
    parser.add_argument("--orders-per-s", type=float, default=200.0, help="orders a second")
    parser.add_argument("--seconds", type=float, default=90.0, help="steady run length")
    parser.add_argument("--window", type=float, default=15.0, help="seconds a window")
    arguments = parser.parse_args()
    asyncio.run(
        measure(arguments.partitions, arguments.orders_per_s, arguments.seconds, arguments.window)
    )


if __name__ == "__main__":
    main()
