"""Fault injection under load (`make chaos`), checked from the outside.

While at least 20,000 orders flow through all four services (with receipts and two recalls
in between), each service is killed with SIGKILL once and restarted, PostgreSQL is
restarted, the broker is frozen (SIGSTOP) for a while, slices of events are delivered again,
some events arrive out of order, and malformed or contract-violating messages are injected
on every input topic. Afterwards the invariants are checked from the raw topics and the
projections' tables, not through the services' own code:

- every order is shipped at most once, and only what was allocated to it;
- every order the load placed is accounted for: each line shipped in full, cancelled,
  backordered with a stated reason, or reserved on a blocked lot waiting for re-allocation;
- every received lot is in inventory, and per lot: received = on hand + shipped - adjusted
  + consumed by production, on hand >= 0, reserved <= on hand;
- nothing is shipped from a lot after fulfillment blocked it, nor reserved after inventory
  recalled it;
- each recall's notices name exactly the customers the raw `order-shipped` stream says
  received an affected lot;
- the dead-letter topics hold exactly the injected poison messages; no outbox row is left
  unsent; no consumer is stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import workload
from bench.measure import group_lag, paced, published
from bench.run import CONSUMED, auth_headers, make_platform
from lottrace.check.audit import CheckOptions, run_check
from lottrace.devstack import Platform
from shared.contracts.envelope import encode
from shared.contracts.events import GoodsReceived, LotAllocated, OrderPlaced, OrderShipped
from shared.contracts.topics import TOPICS, dead_letter_topic
from shared.runtime.lag import OUTBOX_QUERY
from shared.runtime.settings import KafkaSettings

POISON_KINDS = ("malformed_json", "unknown_event_type", "contract_violation")
POISON_SOURCE = "/chaos/poison"


@dataclass
class Fault:
    name: str
    at_s: float
    recovered_s: float | None = None
    detail: str = ""


@dataclass
class Chaos:
    platform: Platform
    orders: int
    started: float = field(default_factory=time.monotonic)
    faults: list[Fault] = field(default_factory=list)
    poison: list[tuple[str, int, int]] = field(default_factory=list)  # topic, partition, offset
    recalls: list[str] = field(default_factory=list)
    placed: list[OrderPlaced] = field(default_factory=list)  # by the load generator
    # What the chaos made up outside our services: allocations inventory never made (units
    # per lot), and a lot and a shipment that no receiving or fulfillment of ours knows.
    forged_allocations: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    foreign_keys: set[str] = field(default_factory=set)
    log: Callable[[str], None] = print

    def elapsed(self) -> float:
        return time.monotonic() - self.started


# ------------------------------------------------------------------ the run


async def run(
    *, orders: int, rate: float, seed: int = 7, log: Callable[[str], None] = print
) -> dict[str, Any]:
    rng = random.Random(seed)
    log_dir = Path(tempfile.mkdtemp(prefix="lottrace-chaos-"))
    platform = make_platform(log_dir)
    platform.partitions = 6
    await platform.start(timeout=180)
    chaos = Chaos(platform=platform, orders=orders, log=log)
    log(f"platform up; logs in {log_dir}")
    try:
        lots = await seed_stock(chaos, rng)
        load = asyncio.create_task(place_orders(chaos, rng, lots, rate=rate))
        side = asyncio.create_task(receipts_and_recalls(chaos, rng, lots, duration=orders / rate))
        faults = asyncio.create_task(inject_faults(chaos, rng, duration=orders / rate))
        await asyncio.gather(load, side, faults)
        await deliver_again(chaos, rng)
        await out_of_order(chaos, rng, lots)
        await inject_poison(chaos)
        settle_started = time.monotonic()
        await quiesce(chaos, timeout=600)
        settled_s = time.monotonic() - settle_started
        checks = await check_invariants(chaos)
    finally:
        platform.stop()
    return {
        "orders_placed": orders,
        "rate_orders_per_s": rate,
        "duration_s": round(chaos.elapsed(), 1),
        "settle_s": round(settled_s, 1),
        "faults": [fault.__dict__ for fault in chaos.faults],
        "poison_messages": len(chaos.poison),
        "recalls": len(chaos.recalls),
        "checks": checks,
        "events_processed": checks.pop("_events", {}),
        "passed": all(check["passed"] for check in checks.values()),
        "logs": str(log_dir),
    }


# The chaos workload: 30 SKUs of 3 lots of 2,000 units each, orders from 3,000 customers.
CHAOS_SIZE = workload.Size(
    name="chaos", skus=30, lots_per_sku=3, customers=3_000, lot_quantity=2_000
)


async def seed_stock(chaos: Chaos, rng: random.Random) -> list[dict[str, Any]]:
    catalogue = workload.catalogue(CHAOS_SIZE, rng, date.today())
    lots = []
    async with _client(chaos, "receiving") as client:
        for body in catalogue.receipts:
            response = await client.post("/receipts", json=body)
            response.raise_for_status()
            lots.append(response.json())
        ingredients = []
        for n in range(4):
            response = await client.post(
                "/receipts", json={"sku": f"ORANGES-{n}", "quantity": "5000", "uom": "KG"}
            )
            response.raise_for_status()
            ingredients.append(response.json())
        for n in range(6):
            response = await client.post(
                "/receipts",
                json={
                    "sku": catalogue.skus[n],
                    "quantity": "2000",
                    "expiry_date": (date.today() + timedelta(days=120)).isoformat(),
                    "inputs": [
                        {"lot_id": ingredients[n % 4]["lot_id"], "quantity": "50", "uom": "KG"}
                    ],
                },
            )
            response.raise_for_status()
            lots.append(response.json())
    chaos.log(f"seeded {len(lots)} lots")
    return lots


async def place_orders(
    chaos: Chaos, rng: random.Random, lots: list[dict[str, Any]], *, rate: float
) -> None:
    skus = sorted({lot["sku"] for lot in lots})
    orders = workload.orders("CH", chaos.orders, skus, CHAOS_SIZE, rng)
    chaos.placed = orders
    producer = AIOKafkaProducer(
        bootstrap_servers=chaos.platform.bootstrap_servers, linger_ms=5, acks="all"
    )
    await producer.start()
    try:
        async for n, order in paced(orders, rate):
            message = encode(order, source="/chaos/oms")
            await producer.send(
                message.topic, message.value, key=message.key, headers=message.headers
            )
            if n % 5000 == 0:
                chaos.log(f"{n} orders placed ({chaos.elapsed():.0f}s)")
        await producer.flush()
    finally:
        await producer.stop()


async def receipts_and_recalls(
    chaos: Chaos, rng: random.Random, lots: list[dict[str, Any]], *, duration: float
) -> None:
    """Receipts through HTTP all along; two recalls, at a third and at two thirds."""
    recall_at = [duration / 3, 2 * duration / 3]
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):  # a service may be down: that is the point
            async with _client(chaos, "receiving") as client:
                lot = rng.choice(lots)
                await client.post(
                    "/receipts",
                    json={
                        "sku": lot["sku"],
                        "quantity": "200",
                        "lot_code": lot["lot_code"],
                        "expiry_date": lot["expiry_date"],
                    },
                )
        if recall_at and chaos.elapsed() >= recall_at[0]:
            # Scheduled recalls are kept until issued: recall may be the service just killed.
            with contextlib.suppress(httpx.HTTPError):
                recall_id = await _issue_recall(chaos, rng, lots)
                if recall_id is not None:
                    recall_at.pop(0)
                    chaos.recalls.append(recall_id)
                    chaos.log(f"recall {recall_id} issued ({chaos.elapsed():.0f}s)")
        await asyncio.sleep(0.5)


async def _issue_recall(chaos: Chaos, rng: random.Random, lots: list[dict[str, Any]]) -> str | None:
    target = rng.choice([lot for lot in lots if lot.get("inputs") or rng.random() < 0.2])
    async with _client(chaos, "recall") as client:
        response = await client.post(
            "/recalls",
            json={"reason": "chaos: sampled complaint", "scope": {"lot_ids": [target["lot_id"]]}},
        )
    return str(response.json()["recall_id"]) if response.status_code == 202 else None


async def inject_faults(chaos: Chaos, rng: random.Random, *, duration: float) -> None:
    """One fault at a time, at a random moment of its slot of the load."""
    steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        *[
            (f"kill -9 {name}", _kill_and_restart(chaos, name))
            for name in ("inventory", "fulfillment", "recall", "receiving")
        ],
        ("restart PostgreSQL", _restart_postgres(chaos)),
        ("pause broker 20s", _pause_broker(chaos, seconds=20)),
    ]
    slot = duration / (len(steps) + 1)
    for index, (name, step) in enumerate(steps):
        target = (index + 0.5 + rng.random() * 0.5) * slot
        await asyncio.sleep(max(0.0, target - chaos.elapsed()))
        fault = Fault(name=name, at_s=round(chaos.elapsed(), 1))
        chaos.log(f"fault: {name} at {fault.at_s}s")
        began = time.monotonic()
        fault.detail = await step()
        fault.recovered_s = round(time.monotonic() - began, 1)
        chaos.faults.append(fault)
        chaos.log(f"recovered from {name} in {fault.recovered_s}s")


def _kill_and_restart(chaos: Chaos, name: str) -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        chaos.platform.kill(name)
        chaos.platform.start_service(name)
        await chaos.platform.wait_ready(timeout=180, names=(name,))
        return "SIGKILL, restarted, ready again"

    return step


def _restart_postgres(chaos: Chaos) -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        assert chaos.platform.postgres is not None
        await chaos.platform.postgres.restart()
        await chaos.platform.wait_ready(timeout=180)
        return "fast shutdown and start; every service ready again"

    return step


def _pause_broker(chaos: Chaos, *, seconds: float) -> Callable[[], Awaitable[str]]:
    async def step() -> str:
        assert chaos.platform.broker is not None
        chaos.platform.broker.pause()
        await asyncio.sleep(seconds)
        chaos.platform.broker.resume()
        await chaos.platform.wait_ready(timeout=180)
        return f"SIGSTOP for {seconds}s, SIGCONT; every service ready again"

    return step


async def deliver_again(chaos: Chaos, rng: random.Random) -> None:
    """Re-deliver slices of what is already on the topics, as a retrying producer would."""
    bootstrap = chaos.platform.bootstrap_servers
    again = 0
    for topic, share in (
        ("order-placed", 0.05),
        ("goods-received", 0.2),
        ("order-shipped", 0.05),
        ("lot-allocated", 0.05),
    ):
        records = await _read_all(bootstrap, topic)
        picked = [r for r in records if rng.random() < share]
        await _produce(bootstrap, [(topic, r.key, r.value, list(r.headers)) for r in picked])
        again += len(picked)
    chaos.log(f"delivered {again} events again")


async def out_of_order(chaos: Chaos, rng: random.Random, lots: list[dict[str, Any]]) -> None:
    """An allocation before its order; a shipment before the receipt of its lot."""
    bootstrap = chaos.platform.bootstrap_servers
    early: list[Any] = []
    for n in range(30):
        lot = rng.choice(lots)
        order_id = f"OOO-{n:03d}"
        allocation = LotAllocated(
            order_id=order_id,
            customer_id=f"CUST-OOO-{n}",
            revision=1000,  # newer than anything inventory will say about this order
            allocations=[
                {
                    "line_no": 1,
                    "sku": lot["sku"],
                    "lot_id": lot["lot_id"],
                    "lot_code": lot["lot_code"],
                    "quantity": 1,
                }
            ],
        )
        chaos.forged_allocations[str(lot["lot_id"])] += 1
        order = OrderPlaced(
            order_id=order_id,
            customer={"customer_id": f"CUST-OOO-{n}"},
            lines=[{"line_no": 1, "sku": lot["sku"], "quantity": 1}],
        )
        early += [encode(allocation, source="/chaos/early"), encode(order, source="/chaos/oms")]
    late_lot = GoodsReceived(
        receipt_id="RC-LATE-1",
        lot_id=uuid.uuid4(),
        lot_code="LATE-LOT-1",
        sku="LATE-SKU",
        quantity=100,
        received_at=datetime.now(UTC),
    )
    shipment = OrderShipped(
        shipment_id="SH-BEFORE-RECEIPT",
        order_id="OOO-SHIP-1",
        customer={"customer_id": "CUST-OOO-SHIP"},
        shipped_at=datetime.now(UTC),
        lines=[
            {
                "line_no": 1,
                "sku": "LATE-SKU",
                "lot_id": late_lot.lot_id,
                "lot_code": "LATE-LOT-1",
                "quantity": 5,
            }
        ],
    )
    chaos.foreign_keys |= {str(late_lot.lot_id), shipment.shipment_id}
    for message in early:
        await _produce(bootstrap, [(message.topic, message.key, message.value, message.headers)])
    for event in (shipment, late_lot):
        message = encode(event, source="/chaos/elsewhere")
        await _produce(bootstrap, [(message.topic, message.key, message.value, message.headers)])
    chaos.log("delivered allocations before their orders and a shipment before its receipt")


async def inject_poison(chaos: Chaos) -> None:
    bootstrap = chaos.platform.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic in TOPICS:
            if not any(topic.name in consumed for consumed in CONSUMED.values()):
                continue
            sample = encode(
                OrderPlaced(
                    order_id="X",
                    customer={"customer_id": "X"},
                    lines=[{"line_no": 1, "sku": "X", "quantity": 1}],
                ),
                source=POISON_SOURCE,
            )
            poisons = {
                "malformed_json": b'{"specversion": "1.0", "id": ',
                "unknown_event_type": sample.value.replace(
                    b"lottrace.order-placed.v1", b"lottrace.order-teleported.v1"
                ),
                "contract_violation": _violation(topic.name),
            }
            for kind, value in poisons.items():
                metadata = await producer.send_and_wait(
                    topic.name, value, key=f"poison-{kind}".encode()
                )
                chaos.poison.append((topic.name, metadata.partition, metadata.offset))
    finally:
        await producer.stop()
    chaos.log(f"injected {len(chaos.poison)} poison messages")


def _violation(topic: str) -> bytes:
    """A well-formed CloudEvent of the topic's type whose data breaks the contract."""
    event_type = next(t.events[0].event_type for t in TOPICS if t.name == topic)
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": POISON_SOURCE,
            "type": event_type,
            "data": {"order_id": "", "quantity": "-5"},
        }
    ).encode()


async def quiesce(chaos: Chaos, *, timeout: float) -> None:
    """Until every group has consumed everything and every outbox is empty."""
    bootstrap = chaos.platform.bootstrap_servers
    topics = sorted({topic for consumed in CONSUMED.values() for topic in consumed})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = await published(bootstrap, topics)
        lag = 0
        for group, consumed in CONSUMED.items():
            lag += await group_lag(bootstrap, group, consumed)
        unsent = sum((await _unsent(chaos)).values())
        # An event applied while the lag was read may have written to an outbox: its rows are
        # then either still unsent or published, which moves the topics' end offsets.
        if lag == 0 and unsent == 0 and await published(bootstrap, topics) == before:
            return
        await asyncio.sleep(1)
    raise TimeoutError("the platform did not settle")


async def _unsent(chaos: Chaos) -> dict[str, int]:
    """Rows each service still has to publish, by the services' own backlog query."""
    result = {}
    for name, url in chaos.platform.database_urls.items():
        connection = await asyncpg.connect(url)
        try:
            row = await connection.fetchrow(OUTBOX_QUERY)
            result[name] = int(row["backlog"]) if row is not None else 0
        finally:
            await connection.close()
    return result


# ------------------------------------------------------------------ invariants


async def check_invariants(chaos: Chaos) -> dict[str, Any]:
    bootstrap = chaos.platform.bootstrap_servers
    streams = {
        name: _dedupe(await _read_all(bootstrap, name))
        for name in (
            "order-placed",
            "lot-allocated",
            "order-shipped",
            "goods-received",
            "recall-issued",
        )
    }
    checks: dict[str, Any] = {
        "_events": {name: len(events) for name, events in streams.items()},
    }
    checks["shipped_at_most_once_and_only_allocated"] = _check_shipping(streams)
    checks["stock_conserved_per_lot"] = await _check_stock(chaos, streams)
    checks["every_order_accounted_for"] = await _check_orders(chaos, streams)
    checks["nothing_shipped_or_reserved_from_a_blocked_lot"] = await _check_blocked_lots(chaos)
    checks["recall_notices_exact"] = _check_recalls(chaos, streams)
    checks["dead_letters_exactly_the_poison"] = await _check_dead_letters(chaos)
    unsent = await _unsent(chaos)
    checks["no_outbox_row_unsent"] = {"passed": not any(unsent.values()), "unsent": unsent}
    lag = {group: await group_lag(bootstrap, group, topics) for group, topics in CONSUMED.items()}
    checks["no_consumer_stuck"] = {"passed": not any(lag.values()), "lag": lag}
    checks["lottrace_check_clean"] = await _lottrace_check(chaos)
    return checks


async def _lottrace_check(chaos: Chaos) -> dict[str, Any]:
    """The audit an SRE runs (`lottrace check`): the four projections agree with each other,
    lot by lot and shipment by shipment, once nothing is in flight."""
    options = CheckOptions(
        database_urls=dict(chaos.platform.database_urls),
        kafka=KafkaSettings(bootstrap_servers=chaos.platform.bootstrap_servers),
        wait_seconds=60,
    )
    report = await run_check(options)
    # The lot and the shipment the chaos made up outside our services are rightly reported.
    ours = [d for d in report.differences if d.key not in chaos.foreign_keys]
    return {
        "passed": report.settled and not ours,
        "foreign_differences": len(report.differences) - len(ours),
        "verdict": report.verdict.value,
        "lots": report.lots,
        "shipments": report.shipments,
        "differences": [
            f"{d.kind.value} {d.key} ({', '.join(d.services)}): {d.detail}" for d in ours[:20]
        ],
    }


def _check_shipping(streams: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    ordered: dict[tuple[str, int], Decimal] = {}
    for event in streams["order-placed"]:
        for line in event["data"]["lines"]:
            ordered.setdefault(
                (event["data"]["order_id"], line["line_no"]), Decimal(line["quantity"])
            )
    allocated_lots: dict[tuple[str, int], set[str]] = defaultdict(set)
    for event in streams["lot-allocated"]:
        for allocation in event["data"]["allocations"]:
            allocated_lots[(event["data"]["order_id"], allocation["line_no"])].add(
                allocation["lot_id"]
            )
    shipped: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    problems = []
    shipments = 0
    for event in streams["order-shipped"]:
        data = event["data"]
        if data["order_id"].startswith("OOO-SHIP"):
            continue  # the shipment made elsewhere, injected before its receipt
        shipments += 1
        for line in data["lines"]:
            key = (data["order_id"], line["line_no"])
            shipped[key] += Decimal(line["quantity"])
            if line["lot_id"] not in allocated_lots[key]:
                problems.append(f"{key} shipped lot {line['lot_id']} never allocated to it")
    for key, quantity in shipped.items():
        if key not in ordered:
            problems.append(f"{key} shipped but never ordered")
        elif quantity > ordered[key]:
            problems.append(f"{key} shipped {quantity} of {ordered[key]}")
    return {
        "passed": not problems,
        "shipments": shipments,
        "order_lines_shipped": len(shipped),
        "problems": problems[:20],
    }


async def _check_stock(chaos: Chaos, streams: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every lot received on the topic is in inventory, and per lot: received = on hand +
    shipped - adjusted + consumed, each term equal to what the topics say, on hand >= 0 and
    reserved <= on hand; per location, 0 <= reserved and any reservation within the stock
    there. (A location's on hand alone may be negative: a shipment made elsewhere before
    the lot's receipt is booked where the shipment says, the receipt where it says.)"""
    received: dict[str, Decimal] = defaultdict(Decimal)
    consumed: dict[str, Decimal] = defaultdict(Decimal)
    for event in streams["goods-received"]:
        data = event["data"]
        received[data["lot_id"]] += Decimal(data["quantity"])
        for item in data["inputs"]:
            consumed[item["lot_id"]] += Decimal(item["quantity"])
    shipped: dict[str, Decimal] = defaultdict(Decimal)
    for event in streams["order-shipped"]:
        for line in event["data"]["lines"]:
            shipped[line["lot_id"]] += Decimal(line["quantity"])
    rows = await _fetch(
        chaos,
        "inventory",
        """
        SELECT lot_id::text AS lot_id, sum(received) AS received, sum(consumed) AS consumed,
               sum(shipped) AS shipped, sum(adjusted) AS adjusted, sum(on_hand) AS on_hand,
               sum(reserved) AS reserved, bool_or(reserved < 0) AS negative_reservation,
               coalesce(max(reserved - on_hand) FILTER (WHERE reserved > 0), 0)
                   AS most_reserved_over_on_hand_at_a_location
        FROM stock GROUP BY lot_id
        """,
    )
    by_lot = {row["lot_id"]: row for row in rows}
    problems = [
        f"lot {lot}: received on the topic, unknown to inventory"
        for lot in received
        if lot not in by_lot
    ]
    for lot, row in by_lot.items():
        forged = chaos.forged_allocations.get(lot, Decimal(0))
        problems += _stock_problems(lot, row, received, shipped, consumed, forged=forged)
    return {
        "passed": not problems,
        "lots": len(rows),
        "lots_received": len(received),
        "problems": problems[:20],
    }


def _stock_problems(
    lot: str,
    row: Any,
    received: dict[str, Decimal],
    shipped: dict[str, Decimal],
    consumed: dict[str, Decimal],
    *,
    forged: Decimal,
) -> list[str]:
    """`forged`: units of the lot in allocations the chaos made up (inventory never reserved
    them); fulfillment may ship them, taking the lot that far below what inventory holds."""
    problems = []
    if row["received"] != row["on_hand"] + row["shipped"] - row["adjusted"] + row["consumed"]:
        problems.append(
            f"lot {lot}: received {row['received']} != on hand + shipped - adjusted + consumed"
        )
    for column, topic in (("received", received), ("shipped", shipped), ("consumed", consumed)):
        if row[column] != topic.get(lot, Decimal(0)):
            problems.append(
                f"lot {lot}: projection {column} {row[column]}, topics say {topic.get(lot)}"
            )
    if row["on_hand"] < -forged:
        problems.append(f"lot {lot}: negative on hand {row['on_hand']} (forged: {forged})")
    if row["negative_reservation"]:
        problems.append(f"lot {lot}: negative reservation")
    over = max(row["reserved"] - row["on_hand"], row["most_reserved_over_on_hand_at_a_location"])
    if over > forged:
        problems.append(f"lot {lot}: {over} more reserved than on hand (forged: {forged})")
    return problems


async def _check_orders(chaos: Chaos, streams: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every order the load generator placed is known to inventory and fulfillment, and each
    of its lines is shipped in full (inventory's count equal to the order-shipped stream's),
    or its order is cancelled, or what is missing is backordered with a stated reason or
    reserved on a lot that fulfillment has blocked (waiting for re-allocation)."""
    shipped: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for event in streams["order-shipped"]:
        for line in event["data"]["lines"]:
            shipped[(event["data"]["order_id"], line["line_no"])] += Decimal(line["quantity"])
    placed = {order.order_id: order for order in chaos.placed}
    ids = list(placed)
    lines = await _fetch(
        chaos,
        "inventory",
        """
        SELECT l.order_id, l.line_no, l.ordered, l.shipped, l.reserved, l.backorder_reason,
               o.status
        FROM order_lines l JOIN orders o USING (order_id) WHERE l.order_id = ANY($1::text[])
        """,
        ids,
    )
    statuses = {
        row["order_id"]: row["status"]
        for row in await _fetch(
            chaos,
            "fulfillment",
            "SELECT order_id, status FROM orders WHERE order_id = ANY($1)",
            ids,
        )
    }
    blocked = {
        (row["order_id"], row["line_no"])
        for row in await _fetch(chaos, "inventory", BLOCKED_RESERVATIONS, ids)
    }
    by_line = {(row["order_id"], row["line_no"]): row for row in lines}
    problems: list[str] = []
    tally: dict[str, int] = defaultdict(int)
    for order_id, order in placed.items():
        if order_id not in statuses:
            problems.append(f"order {order_id}: unknown to fulfillment")
        for line in order.lines:
            key = (order_id, line.line_no)
            verdict = _line_verdict(key, by_line.get(key), shipped[key], key in blocked)
            tally[verdict] += 1
            if verdict.startswith("unaccounted"):
                problems.append(f"order line {key}: {verdict}")
    return {
        "passed": not problems,
        "orders": len(placed),
        "lines": dict(sorted(tally.items())),
        "problems": problems[:20],
    }


# Reservations on lots that inventory has recalled: lines waiting for re-allocation.
BLOCKED_RESERVATIONS = """
    SELECT DISTINCT r.order_id, r.line_no FROM reservations r JOIN lots l USING (lot_id)
    WHERE r.order_id = ANY($1::text[]) AND (l.recalled OR l.on_hold)
"""


def _line_verdict(key: tuple[str, int], row: Any, shipped: Decimal, blocked: bool) -> str:
    if row is None:
        return "unaccounted: unknown to inventory"
    if row["shipped"] != shipped:
        return f"unaccounted: inventory says {row['shipped']} shipped, the topic {shipped}"
    if shipped == row["ordered"]:
        return "shipped"
    if shipped > row["ordered"]:
        return f"unaccounted: {shipped} shipped of {row['ordered']}"
    if row["status"] == "cancelled":
        return "cancelled"
    missing = row["ordered"] - shipped
    if row["backorder_reason"] and missing > row["reserved"]:
        return f"backordered: {row['backorder_reason']}"
    if row["reserved"] == missing and blocked:
        return "waiting for re-allocation from a blocked lot"
    return (
        f"unaccounted: {missing} missing, {row['reserved']} reserved,"
        f" backorder reason {row['backorder_reason']!r}"
    )


async def _check_blocked_lots(chaos: Chaos) -> dict[str, Any]:
    """No shipment from a lot after fulfillment blocked it, and no reservation of a lot after
    inventory recalled or held it: each compared on the deciding service's own clock."""
    shipped_after = await _fetch(
        chaos,
        "fulfillment",
        """
        SELECT b.lot_id::text AS lot_id, s.shipment_id, s.created_at, b.blocked_at
        FROM blocked_lots b JOIN shipment_lines l USING (lot_id)
        JOIN shipments s USING (shipment_id)
        WHERE s.created_at > b.blocked_at
        """,
    )
    reserved_after = await _fetch(
        chaos,
        "inventory",
        """
        SELECT r.lot_id::text AS lot_id, r.order_id, r.at, b.blocked_at
        FROM lot_history r
        JOIN (SELECT lot_id, min(at) AS blocked_at FROM lot_history WHERE change = 'recalled'
              GROUP BY lot_id) b USING (lot_id)
        WHERE r.change = 'reserved' AND r.at > b.blocked_at
        """,
    )
    blocked = await _fetch(chaos, "fulfillment", "SELECT lot_id FROM blocked_lots")
    recalled = await _fetch(chaos, "inventory", "SELECT lot_id FROM lots WHERE recalled")
    problems = [
        f"lot {row['lot_id']}: shipment {row['shipment_id']} at {row['created_at']},"
        f" blocked since {row['blocked_at']}"
        for row in shipped_after
    ] + [
        f"lot {row['lot_id']}: reserved for {row['order_id']} at {row['at']},"
        f" recalled since {row['blocked_at']}"
        for row in reserved_after
    ]
    return {
        "passed": not problems and bool(blocked) and bool(recalled),
        "lots_blocked_in_fulfillment": len(blocked),
        "lots_recalled_in_inventory": len(recalled),
        "problems": problems[:20],
    }


async def _fetch(chaos: Chaos, service: str, query: str, *args: Any) -> list[Any]:
    connection = await asyncpg.connect(chaos.platform.database_urls[service])
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


def _check_recalls(chaos: Chaos, streams: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    results = {}
    problems = []
    for recall_id in chaos.recalls:
        summary = next(
            (
                e["data"]
                for e in streams["recall-issued"]
                if e["type"] == "lottrace.recall-issued.v1" and e["data"]["recall_id"] == recall_id
            ),
            None,
        )
        if summary is None:
            problems.append(f"recall {recall_id}: no recall-issued event")
            continue
        affected = {lot["lot_id"] for lot in summary["affected_lots"]}
        receivers = {
            e["data"]["customer"]["customer_id"]
            for e in streams["order-shipped"]
            if any(line["lot_id"] in affected for line in e["data"]["lines"])
        }
        notified = {
            e["data"]["customer"]["customer_id"]
            for e in streams["recall-issued"]
            if e["type"] == "lottrace.recall-customer-notice.v1"
            and e["data"]["recall_id"] == recall_id
        }
        results[recall_id] = {
            "affected_lots": len(affected),
            "receivers": len(receivers),
            "notified": len(notified),
        }
        if receivers != notified:
            problems.append(
                f"recall {recall_id}: {len(receivers - notified)} receivers not notified,"
                f" {len(notified - receivers)} notified without a shipment"
            )
    return {
        "passed": not problems and len(chaos.recalls) == 2,
        "recalls": results,
        "problems": problems,
    }


async def _check_dead_letters(chaos: Chaos) -> dict[str, Any]:
    bootstrap = chaos.platform.bootstrap_servers
    expected = set()
    for topic, partition, offset in chaos.poison:
        for group, consumed in CONSUMED.items():
            if topic in consumed:
                expected.add((topic, partition, offset, group))
    found: dict[tuple[str, int, int, str], str] = {}
    # Every input topic's dead letters, poisoned or not: a stray one anywhere fails the check.
    for topic in sorted({topic for consumed in CONSUMED.values() for topic in consumed}):
        for record in await _read_all(bootstrap, dead_letter_topic(topic)):
            headers = {name: value.decode() for name, value in record.headers}
            key = (
                headers["source_topic"],
                int(headers["source_partition"]),
                int(headers["source_offset"]),
                headers["consumer_group"],
            )
            found[key] = headers["error_type"]
    missing = expected - set(found)
    unexpected = set(found) - expected
    return {
        "passed": not missing and not unexpected,
        "expected": len(expected),
        "found": len(found),
        "missing": [list(key) for key in sorted(missing)][:20],
        "unexpected": [[*key, found[key]] for key in sorted(unexpected)][:20],
        "error_types": sorted(set(found.values())),
    }


# ------------------------------------------------------------------ helpers


def _client(chaos: Chaos, service: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=chaos.platform.urls()[service], timeout=30, headers=auth_headers(chaos.platform)
    )


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for partition_records in batch.values():
                records.extend(partition_records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


def _dedupe(records: list[Any]) -> list[dict[str, Any]]:
    seen = set()
    events = []
    for record in records:
        try:
            event = json.loads(record.value)
            key = (event["source"], event["id"])
            event["data"]
        except (ValueError, KeyError, TypeError):
            continue  # poison: checked against the DLQs
        if event["source"] == POISON_SOURCE:
            continue
        if key not in seen:
            seen.add(key)
            events.append(event)
    return events


async def _produce(
    bootstrap: str, messages: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k, headers=h) for t, k, v, h in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def write_report(result: dict[str, Any], *, json_path: Path, docs: Path | None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    if docs is None:
        return
    rows = ["| fault | at | recovered in |", "|---|---:|---:|"]
    rows += [f"| {f['name']} | {f['at_s']} s | {f['recovered_s']} s |" for f in result["faults"]]
    checks = ["| invariant | result |", "|---|---|"]
    for name, check in result["checks"].items():
        verdict = "passed" if check["passed"] else f"**FAILED**: {check.get('problems') or check}"
        checks.append(f"| {name.replace('_', ' ')} | {verdict} |")
    events = ", ".join(f"{name} {count:,}" for name, count in result["events_processed"].items())
    docs.mkdir(parents=True, exist_ok=True)
    page = docs / "reliability.md"
    notes = ""
    if page.exists() and "<!-- notes:start -->" in page.read_text():
        notes = (
            page.read_text().split("<!-- notes:start -->", 1)[1].split("<!-- notes:end -->", 1)[0]
        )
    page.write_text(
        f"""# Reliability

Measured by `make chaos` ({result["orders_placed"]:,} orders at {result["rate_orders_per_s"]:.0f}
orders/s through all four services, with receipts and {result["recalls"]} recalls in between;
{result["duration_s"]} s in all, {result["settle_s"]} s to settle after the last fault). Raw
results: `bench/results/chaos.json`. Overall: **{"passed" if result["passed"] else "FAILED"}**.

Distinct events on the topics at the end: {events}. Poison messages injected:
{result["poison_messages"]} (a malformed JSON, an unknown CloudEvents type and a contract violation
on each input topic).

## Faults, and the time until the platform answered again

{chr(10).join(rows)}

Also: a slice of `order-placed`, `goods-received`, `order-shipped` and `lot-allocated` events
delivered again with their original ids; 30 allocations delivered before their orders; a
shipment delivered before the receipt of its lot.

## Invariants, checked from the raw topics and the projections' tables

{chr(10).join(checks)}

<!-- notes:start -->
{notes.strip()}
<!-- notes:end -->
"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=250.0, help="orders per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    arguments = parser.parse_args()
    result = asyncio.run(run(orders=arguments.orders, rate=arguments.rate))
    write_report(result, json_path=arguments.out, docs=arguments.docs)
    print(json.dumps({name: check["passed"] for name, check in result["checks"].items()}, indent=2))
    raise SystemExit(0 if result["passed"] else 1)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
