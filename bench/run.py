"""The benchmark: the whole platform on this machine, a synthetic workload through the real
topics and HTTP endpoints, and a raw baseline measured in the same run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import baseline, imports, notices, recall_loop, scaling, workload
from bench.http_timing import CLIENTS, TimedClients
from bench.measure import MemorySampler, paced, percentile, wait_caught_up
from bench.workload import Size
from lottrace.devstack import ROOT, Platform
from lottrace.infra import SERVICES, free_port
from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import OrderPlaced, RecallIssued
from shared.runtime.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings

Progressor = Callable[[str, int], Callable[[int], None]]


AUTO_SHIP = {"fulfillment": {"FULFILLMENT_AUTO_SHIP": "true"}}


def on_free_ports(**fields: Any) -> Platform:
    """A Platform whose broker, PostgreSQL and services each get a free port; `fields` set the
    rest. The benchmark's platform and the end-to-end tests' are all made here."""
    return Platform(
        kafka_port=free_port(),
        postgres_port=free_port(),
        http_ports={name: free_port() for name in SERVICES},
        **fields,
    )


def make_platform(log_dir: Path, *, services: tuple[str, ...] = SERVICES) -> Platform:
    return on_free_ports(
        durable_postgres=True,
        log_dir=log_dir,
        services=services,
        extra_env={"LOG_LEVEL": "WARNING"},
        service_env=AUTO_SHIP,
    )


def auth_headers(platform: Platform) -> dict[str, str]:
    key = getattr(platform, "admin_key", None)
    return {"Authorization": f"Bearer {key}"} if key else {}


async def produce(
    bootstrap: str,
    messages: Sequence[OutgoingMessage],
    advance: Callable[[int], None] | None = None,
) -> float:
    """Publish as fast as the broker takes them; returns the monotonic time the first went."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        started = time.monotonic()
        for start in range(0, len(messages), 5_000):
            futures = [
                await producer.send(m.topic, m.value, key=m.key, headers=m.headers)
                for m in messages[start : start + 5_000]
            ]
            await asyncio.gather(*futures)
            if advance:
                advance(len(futures))
        return started
    finally:
        await producer.stop()


class Tail:
    """Reads a topic from its current end onwards (what is published after it starts)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
        )
        self.topic = topic

    async def __aenter__(self) -> Tail:
        await self.consumer.start()
        partitions = [
            TopicPartition(self.topic, p)
            for p in sorted(self.consumer.partitions_for_topic(self.topic) or ())
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for partition in partitions:
            await self.consumer.position(partition)  # resolve the end now, not at first fetch
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def read(self, timeout_ms: int = 200) -> list[Any]:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=10_000)
        return [record for records in batch.values() for record in records]


CONSUMED = {
    "inventory": [
        "goods-received",
        "order-placed",
        "order-cancelled",
        "order-shipped",
        "recall-issued",
    ],
    "fulfillment": ["order-placed", "order-cancelled", "lot-allocated", "recall-issued"],
    "recall": ["goods-received", "order-shipped"],
}


async def quiesce(platform: Platform, timeout: float = 300) -> None:
    """Wait until every service has consumed everything published so far."""
    for group, topics in CONSUMED.items():
        if group in platform.processes:
            await wait_caught_up(platform.bootstrap_servers, group, topics, timeout=timeout)


# ------------------------------------------------------------------ seeding


async def seed(
    platform: Platform, size: Size, rng: random.Random, progress: Progressor
) -> dict[str, Any]:
    urls = platform.urls()
    headers = auth_headers(platform)
    catalogue = workload.catalogue(size, rng, date.today())
    async with httpx.AsyncClient(base_url=urls["receiving"], timeout=60, headers=headers) as client:
        lots, receipts_per_s = await _receive_all(client, catalogue.receipts, progress)
        ingredients, produced = await _produce_juice(client, catalogue.skus, size, rng)
    await wait_caught_up(platform.bootstrap_servers, "inventory", ["goods-received"], timeout=120)
    held = rng.sample(lots, max(1, len(lots) // 50))
    async with httpx.AsyncClient(base_url=urls["inventory"], timeout=60, headers=headers) as client:
        for lot in held:  # quality holds on a few lots
            response = await client.post(
                f"/lots/{lot['lot_id']}/hold", json={"reason": "bench: sample held"}
            )
            response.raise_for_status()
    await wait_caught_up(platform.bootstrap_servers, "recall", ["goods-received"], timeout=120)
    return {
        "receipts_per_s": receipts_per_s,
        "lots": lots,
        "produced": produced,
        "ingredients": ingredients,
        "skus": catalogue.orderable_skus,
        "held": len(held),
        "expired": sum(1 for lot in lots if lot["expiry_date"] < date.today().isoformat()),
    }


async def _receive_all(
    client: httpx.AsyncClient, receipts: list[dict[str, Any]], progress: Progressor
) -> tuple[list[dict[str, Any]], float]:
    """Every receipt over HTTP, 16 at a time; the lots and the receipts per second."""
    lots: list[dict[str, Any]] = []
    advance = progress("receiving lots over HTTP", len(receipts))
    semaphore = asyncio.Semaphore(16)

    async def receive(body: dict[str, Any]) -> None:
        async with semaphore:
            response = await client.post("/receipts", json=body)
            response.raise_for_status()
            lots.append(response.json())
            advance(1)

    started = time.monotonic()
    await asyncio.gather(*(receive(body) for body in receipts))
    return lots, len(receipts) / (time.monotonic() - started)


async def _produce_juice(
    client: httpx.AsyncClient, skus: list[str], size: Size, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Production: ten ingredient lots, then twenty juice lots made from two of them each."""

    async def received(body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post("/receipts", json=body)
        response.raise_for_status()
        return dict(response.json())

    ingredients = []
    for n in range(10):
        farm = {"supplier_id": f"FARM-{n}"}
        oranges: dict[str, Any] = {"sku": f"ORANGES-{n}", "quantity": "10000", "uom": "KG"}
        ingredients.append(await received(oranges | {"supplier": farm}))
    expiry = date.fromordinal(date.today().toordinal() + 200).isoformat()
    produced = []
    for n in range(20):
        inputs = rng.sample(ingredients, 2)
        juice: dict[str, Any] = {
            "sku": skus[n],
            "quantity": str(size.lot_quantity),
            "expiry_date": expiry,
            "inputs": [{"lot_id": i["lot_id"], "quantity": "100", "uom": "KG"} for i in inputs],
        }
        produced.append(await received(juice))
    return ingredients, produced


# ------------------------------------------------------------------ pipeline


async def throughput(
    bootstrap: str,
    orders: list[OrderPlaced],
    *,
    placed_topic: str = "order-placed",
    shipped_topic: str = "order-shipped",
    progress: Progressor,
    label: str,
) -> dict[str, Any]:
    """Publish every order at once and time until every line has shipped."""
    messages = [_on_topic(encode(order, source="/bench/oms"), placed_topic) for order in orders]
    wanted = {(order.order_id, line.line_no) for order in orders for line in order.lines}
    shipped: set[tuple[str, int]] = set()
    per_second: dict[int, int] = defaultdict(int)
    advance = progress(label, len(wanted))
    async with Tail(bootstrap, shipped_topic) as tail:
        started = time.monotonic()
        publishing = asyncio.create_task(produce(bootstrap, messages))
        last = time.monotonic()
        while len(shipped) < len(wanted) and time.monotonic() - last < 60:
            for record in await tail.read():
                data = json.loads(record.value)["data"]
                before = len(shipped)
                shipped.update((data["order_id"], line["line_no"]) for line in data["lines"])
                new = len(shipped) - before
                if new:
                    last = time.monotonic()
                    per_second[int(last - started)] += new
                    advance(new)
        await publishing
    elapsed = last - started
    return {
        "order_lines": len(wanted),
        "order_lines_shipped": len(shipped & wanted),
        "seconds": elapsed,
        "order_lines_per_s": len(shipped & wanted) / elapsed,
        "timeline": [per_second.get(second, 0) for second in range(int(elapsed) + 1)],
    }


async def latency(
    bootstrap: str, orders: list[OrderPlaced], *, lines_per_s: float, progress: Progressor
) -> dict[str, Any]:
    """Publish at a steady rate and time each order from placed to shipped."""
    average_lines = sum(len(o.lines) for o in orders) / len(orders)
    orders_per_s = lines_per_s / average_lines
    messages = [encode(order, source="/bench/oms") for order in orders]
    sent_at: dict[str, float] = {}
    latencies: dict[str, float] = {}
    per_second: dict[int, list[float]] = defaultdict(list)
    advance = progress(f"placing orders at {lines_per_s:.0f} lines/s", len(orders))
    # Like an upstream order system on a current Kafka client (linger.ms is 5 by default since
    # Kafka 4.0): orders placed within a few milliseconds share a request.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    async with Tail(bootstrap, "order-shipped") as tail:

        async def collect() -> None:
            while len(latencies) < len(orders):
                for record in await tail.read(timeout_ms=100):
                    arrived = time.monotonic()
                    order_id = json.loads(record.value)["data"]["order_id"]
                    if order_id in sent_at and order_id not in latencies:
                        latencies[order_id] = arrived - sent_at[order_id]
                        per_second[int(sent_at[order_id] - started)].append(latencies[order_id])
                        advance(1)

        collecting = asyncio.create_task(collect())
        started = time.monotonic()
        async for _, message in paced(messages, orders_per_s, started=started):
            sent_at[message.key.decode() if message.key else ""] = time.monotonic()
            await producer.send(
                message.topic, message.value, key=message.key, headers=message.headers
            )
        await producer.flush()
        try:
            await asyncio.wait_for(collecting, timeout=60)
        finally:
            collecting.cancel()
            await producer.stop()
    values = [seconds * 1000 for seconds in latencies.values()]
    return {
        "orders": len(orders),
        "orders_shipped": len(latencies),
        "lines_per_s": lines_per_s,
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) if values else float("nan"),
        "timeline_p99_ms": [
            percentile([v * 1000 for v in per_second[s]], 0.99) if per_second.get(s) else None
            for s in range(max(per_second, default=0) + 1)
        ],
    }


async def raw_baseline(
    platform: Platform, orders: list[OrderPlaced], progress: Progressor
) -> dict[str, Any]:
    """The same hops without the framework, on the same broker and PostgreSQL, now."""
    assert platform.postgres is not None
    await ensure_topics(
        KafkaSettings(bootstrap_servers=platform.bootstrap_servers),
        baseline.TOPICS,
        partitions=platform.partitions,
    )
    processes = []
    for role in baseline.ROLES:
        database = f"baseline_{role}"
        await platform.postgres.create_database(database)
        processes.append(
            _start_baseline(role, platform.bootstrap_servers, platform.postgres.url(database))
        )
    try:
        placed, shipped = baseline.TOPICS[0], baseline.TOPICS[2]
        warm_up = workload.orders(
            "BASE-WARM", 20, [o.lines[0].sku for o in orders[:50]], workload.QUICK, random.Random(1)
        )
        await throughput(
            platform.bootstrap_servers,
            warm_up,
            placed_topic=placed,
            shipped_topic=shipped,
            progress=progress,
            label="raw baseline: joining",
        )
        return await throughput(
            platform.bootstrap_servers,
            orders,
            placed_topic=placed,
            shipped_topic=shipped,
            progress=progress,
            label="raw baseline: order lines shipped",
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)


def _start_baseline(role: str, bootstrap: str, dsn: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.baseline", "--role", role]
    return subprocess.Popen([*command, "--bootstrap", bootstrap, "--dsn", dsn], cwd=ROOT)


# ------------------------------------------------------------------ traces


async def traces(platform: Platform, lot_ids: list[str], progress: Progressor) -> dict[str, Any]:
    """Each lot forward and backward, one call at a time, by each client in turn (which goes
    first alternates from lot to lot); the figures are aiohttp's, with httpx's beside them
    (bench/http_timing.py)."""
    timings: dict[str, dict[str, list[float]]] = {
        client: {"forward": [], "backward": []} for client in CLIENTS
    }
    advance = progress("tracing lots forward and backward", len(lot_ids) * 2)
    url = platform.urls()["recall"]
    async with TimedClients(auth_headers(platform)) as clients:
        for n, lot_id in enumerate(lot_ids):
            for direction in ("forward", "backward"):
                for client in CLIENTS if n % 2 == 0 else CLIENTS[::-1]:
                    timings[client][direction].append(
                        await clients.get_ms(client, f"{url}/trace/lots/{lot_id}/{direction}")
                    )
                advance(1)
    both = {client: by["forward"] + by["backward"] for client, by in timings.items()}
    return {
        "lots": len(lot_ids),
        "client": "aiohttp",
        "p50_ms": percentile(both["aiohttp"], 0.50),
        "p99_ms": percentile(both["aiohttp"], 0.99),
        "forward_p99_ms": percentile(timings["aiohttp"]["forward"], 0.99),
        "backward_p99_ms": percentile(timings["aiohttp"]["backward"], 0.99),
        "httpx_p50_ms": percentile(both["httpx"], 0.50),
        "httpx_p99_ms": percentile(both["httpx"], 0.99),
    }


# ------------------------------------------------------------------ recall at scale


async def recall_at_scale(
    size: Size, rng: random.Random, sampler: MemorySampler, progress: Progressor
) -> dict[str, Any]:
    """A lot shipped to many customers among many shipment lines, all through `order-shipped`."""
    load = workload.recall_load(size, rng)
    log_dir = Path(tempfile.mkdtemp(prefix="lottrace-bench-recall-"))
    platform = make_platform(log_dir, services=("recall",))
    await platform.start(timeout=180)
    sampler.watch("recall (at scale)", platform.processes["recall"].pid or 0)
    try:
        ingest_s = await _ingest_shipments(platform, load, progress)
        timed = await _time_recall(platform, load, size.recall_customers, progress)
        exported = await _fsma_export(platform, progress)
        return {
            "shipment_lines": load.lines,
            "shipments": len(load.shipments),
            "ingest_lines_per_s": load.lines / ingest_s,
            **timed,
            **exported,
        }
    finally:
        sampler.sample()
        platform.stop()


async def _fsma_export(platform: Platform, progress: Progressor) -> dict[str, Any]:
    """The FSMA 204 sheet of the whole history as CSV, read to its end; the memory sampler
    watches the recall service meanwhile."""
    advance = progress("FSMA 204 sheet of the whole history", 1)
    async with httpx.AsyncClient(
        base_url=platform.urls()["recall"], timeout=600, headers=auth_headers(platform)
    ) as client:
        started = time.monotonic()
        size = 0
        async with client.stream("GET", "/reports/fsma204", params={"format": "csv"}) as sheet:
            sheet.raise_for_status()
            async for chunk in sheet.aiter_raw():
                size += len(chunk)
        seconds = time.monotonic() - started
    advance(1)
    return {"fsma_csv_s": seconds, "fsma_csv_mb": size / 1e6}


async def _ingest_shipments(
    platform: Platform, load: workload.RecallLoad, progress: Progressor
) -> float:
    """Publish the receipts and every shipment; seconds until recall has consumed them."""
    receipts = [encode(lot, source="/bench/receiving") for lot in [load.big_lot, *load.other_lots]]
    await produce(platform.bootstrap_servers, receipts)
    advance = progress("publishing shipment lines", load.lines)
    messages = [encode(shipment, source="/bench/fulfillment") for shipment in load.shipments]
    started = await produce(platform.bootstrap_servers, messages, lambda n: advance(n * 5))
    caught_up = await wait_caught_up(
        platform.bootstrap_servers,
        "recall",
        ["order-shipped", "goods-received"],
        timeout=900,
        interval=1.0,
    )
    return caught_up - started


@dataclass
class RecallHeard:
    """What the `recall-issued` topic said of one recall, in seconds after its request."""

    requested: float  # time.monotonic() when POST /recalls was sent
    recall_id: str
    expected: int  # affected_customer_count in the answer
    answered_s: float
    summary_s: float | None = None
    notice_s: list[float] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)
    done_s: float = 0.0

    def per_second(self) -> list[int]:
        """Notices heard in each second after the request: where a slow recall waited."""
        return [
            sum(1 for at in self.notice_s if int(at) == second)
            for second in range(int(self.done_s) + 1)
        ]


async def recall_and_hear(
    platform: Platform,
    tail: Tail,
    lot_id: str,
    *,
    reason: str,
    on_notice: Callable[[int], None] = lambda _: None,
) -> RecallHeard:
    """Recall one lot; read the topic until every customer's notice came (or 120 s)."""
    async with httpx.AsyncClient(
        base_url=platform.urls()["recall"], timeout=60, headers=auth_headers(platform)
    ) as client:
        requested = time.monotonic()
        response = await client.post(
            "/recalls",
            json={"reason": reason, "classification": "I", "scope": {"lot_ids": [lot_id]}},
        )
        answered_s = time.monotonic() - requested
        response.raise_for_status()
    answer = response.json()
    heard = RecallHeard(
        requested,
        answer["recall_id"],
        answer["affected_customer_count"],
        answered_s=answered_s,
    )
    notices = await _hear_notices(tail, heard, on_notice)
    heard.done_s = time.monotonic() - requested
    heard.customers = _customers_of(notices, heard.recall_id)
    return heard


async def _hear_notices(
    tail: Tail, heard: RecallHeard, on_notice: Callable[[int], None]
) -> list[bytes]:
    """Each notice of the recall as it arrives, told by its key and `ce_type` header, unparsed:
    this reader shares the cores it measures, and decoding each notice was 40 % of its samples
    while they arrived (py-spy). Their bodies are checked after the clock stops."""
    key, summary = heard.recall_id.encode(), RecallIssued.event_type.encode()
    notices: list[bytes] = []
    while len(notices) < heard.expected and time.monotonic() - heard.requested < 120:
        before = len(notices)
        for record in await tail.read():
            if record.key != key:
                continue
            if dict(record.headers).get("ce_type") == summary:
                heard.summary_s = time.monotonic() - heard.requested
            else:
                heard.notice_s.append(time.monotonic() - heard.requested)
                notices.append(record.value)
        on_notice(len(notices) - before)
    return notices


def _customers_of(notices: Sequence[bytes], recall_id: str) -> set[str]:
    """The customers the notices name, each notice checked to be of the recall."""
    customers = set()
    for value in notices:
        data = json.loads(value)["data"]
        if data["recall_id"] != recall_id:
            raise AssertionError(f"a notice keyed {recall_id} is of recall {data['recall_id']}")
        customers.add(data["customer"]["customer_id"])
    return customers


async def _time_recall(
    platform: Platform, load: workload.RecallLoad, customers: int, progress: Progressor
) -> dict[str, Any]:
    """Recall the big lot; time the answer, the summary and the last customer notice."""
    async with Tail(platform.bootstrap_servers, "recall-issued") as tail:
        advance = progress("customer notices", customers)
        heard = await recall_and_hear(
            platform,
            tail,
            str(load.big_lot.lot_id),
            reason="bench: contaminated batch",
            on_notice=advance,
        )
    return {
        "customers": heard.expected,
        "distinct_customers_notified": len(heard.customers),
        "request_s": heard.answered_s,
        "summary_s": heard.summary_s,
        "all_notices_s": heard.done_s,
        "notices": len(heard.notice_s),
        "notices_per_second": heard.per_second(),
    }


# ------------------------------------------------------------------ the whole run


async def run(size: Size) -> dict[str, Any]:
    rng = random.Random(2026)
    log_dir = Path(tempfile.mkdtemp(prefix="lottrace-bench-"))
    results: dict[str, Any] = {
        "size": size.name,
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bars:

        def progress(description: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(description, total=total)
            return lambda n: bars.advance(task, n)

        platform = make_platform(log_dir)
        advance = progress("starting broker, PostgreSQL and four services", 1)
        await platform.start(timeout=180)
        advance(1)
        sampler = MemorySampler(
            {name: process.pid or 0 for name, process in platform.processes.items()}
        )
        sampler.start()
        try:
            results |= await on_the_platform(platform, size, rng, progress)
        finally:
            sampler.sample()
            platform.stop()
        results["recall"] = await recall_at_scale(size, rng, sampler, progress)
        await sampler.stop()
        results["notice_paths"] = await notice_paths(progress)
        results["recall_loop"] = await recall_loop_figures(progress)
        results["imports"] = await import_figures(size, log_dir, progress)
        results["scaling"] = await scaling_figures(size, progress)
    results["rss_mb"] = {name: round(mb, 1) for name, mb in sampler.peak_mb.items()}
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return results


async def on_the_platform(
    platform: Platform, size: Size, rng: random.Random, progress: Progressor
) -> dict[str, Any]:
    """Receiving, the pipeline at full and half rate, traces, and the raw baseline."""
    seeded = await seed(platform, size, rng, progress)
    skus = seeded["skus"]
    peak = await throughput(
        platform.bootstrap_servers,
        workload.orders("TP", size.throughput_orders, skus, size, rng),
        progress=progress,
        label="pipeline: order lines shipped",
    )
    # Steady state: the consumers of what the burst produced finish before we time.
    await quiesce(platform)
    half_rate = peak["order_lines_per_s"] / 2
    steady_orders = int(half_rate / 3 * size.half_rate_seconds)  # ~3 lines an order
    steady = await latency(
        platform.bootstrap_servers,
        workload.orders("LAT", steady_orders, skus, size, rng),
        lines_per_s=half_rate,
        progress=progress,
    )
    trace_lots = [
        lot["lot_id"] for lot in rng.sample(seeded["lots"], min(size.traces, len(seeded["lots"])))
    ]
    trace_lots += [lot["lot_id"] for lot in seeded["produced"] + seeded["ingredients"]]
    await quiesce(platform)
    trace = await traces(platform, trace_lots, progress)
    raw = await raw_baseline(
        platform, workload.orders("RAW", size.throughput_orders, skus, size, rng), progress
    )
    return {
        "receiving": {
            "receipts_per_s": seeded["receipts_per_s"],
            "lots": len(seeded["lots"]),
            "held_lots": seeded["held"],
            "expired_lots": seeded["expired"],
            "produced_lots": len(seeded["produced"]),
        },
        "trace": trace,
        "pipeline": pipeline_figures(peak, steady, raw),
    }


def pipeline_figures(
    peak: dict[str, Any], steady: dict[str, Any], raw: dict[str, Any]
) -> dict[str, Any]:
    return {
        "order_lines_per_s": peak["order_lines_per_s"],
        "order_lines": peak["order_lines"],
        "order_lines_shipped": peak["order_lines_shipped"],
        "p50_ms": steady["p50_ms"],
        "p99_ms": steady["p99_ms"],
        "max_ms": steady["max_ms"],
        "latency_rate_lines_per_s": steady["lines_per_s"],
        "latency_orders": steady["orders"],
        "latency_orders_shipped": steady["orders_shipped"],
        "baseline_lines_per_s": raw["order_lines_per_s"],
        "ratio_to_baseline": peak["order_lines_per_s"] / raw["order_lines_per_s"],
        "throughput_timeline": peak["timeline"],
        "baseline_timeline": raw["timeline"],
        "latency_timeline_p99_ms": steady["timeline_p99_ms"],
    }


NOTICE_PATH_CUSTOMERS = 5_000


async def notice_paths(progress: Progressor) -> dict[str, Any]:
    """What one chunk of recall notices costs built in SQL (the path the notifier takes for
    notices that fit whole) against built from the contract models (the path for the rest)."""
    advance = progress("recall notices: set-based SQL against contract models", 1)
    measured = await notices.measure(NOTICE_PATH_CUSTOMERS, 3, 3)
    advance(1)
    return {
        "customers": NOTICE_PATH_CUSTOMERS,
        "sql_ms": measured["sql_seconds"] * 1000,
        "model_ms": measured["model_seconds"] * 1000,
        "model_over_sql": measured["model_seconds"] / measured["sql_seconds"],
    }


async def recall_loop_figures(progress: Progressor) -> dict[str, Any]:
    """Responses in, the effectiveness check and drills of the 100k-customer recall
    (bench/recall_loop.py)."""
    advance = progress("recall loop: responses, effectiveness, drill", 1)
    measured = await recall_loop.measure(100_000, 1_000_000)
    advance(1)
    return measured


async def scaling_figures(size: Size, progress: Progressor) -> dict[str, Any]:
    """Trace and allocation cost against the size of the history (bench/scaling.py); the
    quick run on smaller histories, `make bench-scale` up to 10M shipment lines."""
    sizes = scaling.QUICK_SIZES if size.name == "quick" else scaling.SIZES
    advance = progress(f"scaling: histories of {', '.join(f'{n:,}' for n in sizes)} lines", 1)
    measured = await scaling.measure(sizes)
    advance(1)
    return measured


async def import_figures(size: Size, log_dir: Path, progress: Progressor) -> dict[str, Any]:
    """`lottrace import` of a lots and a shipments file against receiving and fulfillment
    (bench/imports.py); the quick run imports a tenth of the rows."""
    rows = imports.TARGET_ROWS // 10 if size.name == "quick" else imports.TARGET_ROWS
    advance = progress(f"onboarding import: {rows:,} lot rows, {rows:,} shipment rows", 1)
    (log_dir / "imports").mkdir(exist_ok=True)
    platform = make_platform(log_dir / "imports", services=("receiving", "fulfillment"))
    await platform.start(timeout=180)
    try:
        measured = await imports.measure(platform, rows)
    finally:
        platform.stop()
    advance(1)
    return measured


def machine() -> dict[str, Any]:
    import platform as host

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": host.python_version(),
        "system": f"{host.system()} {host.release()}",
    }


def _on_topic(message: OutgoingMessage, topic: str) -> OutgoingMessage:
    return OutgoingMessage(
        topic=topic, key=message.key, value=message.value, headers=message.headers
    )
