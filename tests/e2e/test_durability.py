"""Nothing acknowledged is lost (issue 11): a drained stop and start on the same data folder,
kill -9 of the whole platform process group, kill -9 of the embedded broker and of each
service under the supervisor.

What "acknowledged" means here: an HTTP 2xx from one of our services, or an upstream event
that one of our services consumed (its inbox row is in the database). An upstream event the
embedded broker held and nobody had consumed yet can be lost at a crash of the broker (its
log is in memory only; README): these tests do not count on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from bench.run import AUTO_SHIP, on_free_ports
from lottrace.cli import app as cli
from lottrace.devstack import ROOT, Platform, ServiceProcess, drain, supervisor_of
from lottrace.home import DataHome
from lottrace.infra import SERVICES, Hopeless, wait_until
from lottrace.supervisor import Supervisor
from shared.contracts.envelope import encode
from shared.contracts.events import OrderPlaced
from tests.e2e.conftest import E2E_ENV, Clients
from tests.e2e.test_local_platform import platform_on, running, stock
from tests.e2e.test_orange_juice import (
    allocated,
    eventually,
    place_order,
    receive,
    ship,
    shipments_known_to_recall,
    unique,
)
from tests.kafka_helpers import outbox_drained

ORDER_SOURCE = "/oms/eu-1"


@pytest.fixture
def home() -> Iterator[Path]:
    """A data folder that PostgreSQL (run as `nobody` under root) can reach: not below
    pytest's 0700 tmp_path, where the data would be moved out to /var/lib/lottrace."""
    folder = Path(tempfile.mkdtemp(prefix="lottrace-durable-"))
    folder.chmod(0o755)
    try:
        yield folder / "home"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def lottrace_check(platform: Platform, *, wait: float = 60) -> tuple[int, str]:
    """`lottrace check --wait` against the platform's databases and broker."""
    args = [
        "check",
        f"--wait={wait}",
        *(f"--{name}-database-url={url}" for name, url in platform.database_urls.items()),
        f"--bootstrap={platform.bootstrap_servers}",
    ]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


async def assert_check_clean(platform: Platform, *, wait: float = 60) -> str:
    code, output = await asyncio.to_thread(lottrace_check, platform, wait=wait)
    assert code == 0, output
    assert "consistent:" in output, output
    print(output.strip().splitlines()[-1])
    return output


async def republished(platform: Platform) -> dict[str, int]:
    """Each service's `lottrace_outbox_republished_total` (its /metrics)."""
    found = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in platform.urls().items():
            text = (await client.get(f"{url}/metrics")).text
            match = re.search(r"^lottrace_outbox_republished_total (\S+)$", text, re.MULTILINE)
            found[name] = int(float(match.group(1))) if match else 0
    return found


async def fetch_all(clients: Clients, paths: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """GET every (service, path); each must answer 200."""
    views = {}
    for label, (service, path) in paths.items():
        client: httpx.AsyncClient = getattr(clients, service)
        response = await client.get(path)
        assert response.status_code == 200, f"{label}: {response.status_code} {response.text}"
        views[label] = response.json()
    return views


def order_served(order: dict[str, Any]) -> bool:
    """Allocated (and maybe shipped already, under auto_ship)."""
    return order["status"] == "shipped" or (
        bool(order["allocations"]) and order["status"] == "open"
    )


async def served(clients: Clients, order_id: str, *, timeout: float = 30) -> None:
    """Wait until the order is allocated (or shipped); fails naming its last state."""
    last: list[str] = []

    async def done() -> bool:
        response = await clients.fulfillment.get(f"/orders/{order_id}")
        last[:] = [f"{response.status_code} {response.text[:500]}"]
        return response.status_code == 200 and order_served(response.json())

    try:
        await wait_until(done, timeout=timeout, interval=0.2, what=f"{order_id} allocated")
    except TimeoutError as error:
        raise AssertionError(f"{error}; last seen: {last}") from None


# --------------------------------------------------------------------------------- 1. restart


@pytest.mark.timeout(240)
async def test_a_drained_restart_keeps_lots_orders_shipments_and_the_recall(home: Path) -> None:
    sku, recalled_sku = unique("SKU"), unique("RSKU")
    ann, ben, cat, eva = unique("SO"), unique("SO"), unique("SO"), unique("SO")
    first = platform_on(home)
    async with running(first) as clients:
        lot = await receive(clients, sku, 10, expires_in=30)
        bad = await receive(clients, recalled_sku, 6, expires_in=30)
        await place_order(clients, ann, "ANN", sku, 3)
        await place_order(clients, ben, "BEN", sku, 2)
        await place_order(clients, cat, "CAT", recalled_sku, 4)
        for order in (ann, ben, cat):
            await allocated(clients, order)
        shipped = {order: (await ship(clients, order))["shipment_id"] for order in (ann, cat)}
        await shipments_known_to_recall(clients, bad["lot_id"], 1)
        issued = await clients.recall.post(
            "/recalls",
            json={"reason": "sealing defect", "classification": "I",
                  "scope": {"lot_ids": [bad["lot_id"]]}},
        )  # fmt: skip
        assert issued.status_code == 202, issued.text
        recall_id = issued.json()["recall_id"]
        await eventually(
            lambda: clients.recall.get(f"/recalls/{recall_id}"),
            lambda recall: recall["notices_complete"] and recall["notified_customers"] == 1,
        )
        await eventually(
            lambda: clients.inventory.get(f"/lots/{bad['lot_id']}"),
            lambda view: view["status"] == "recalled",
        )
        await eventually(
            lambda: clients.fulfillment.get(f"/orders/{ben}"),
            lambda order: order["status"] == "open" and len(order["allocations"]) == 1,
        )
        paths = {
            "receiving lot": ("receiving", f"/lots/{lot['lot_id']}"),
            "receiving recalled lot": ("receiving", f"/lots/{bad['lot_id']}"),
            "inventory lot": ("inventory", f"/lots/{lot['lot_id']}"),
            "inventory recalled lot": ("inventory", f"/lots/{bad['lot_id']}"),
            "inventory history": ("inventory", f"/lots/{lot['lot_id']}/history"),
            **{f"order {o}": ("fulfillment", f"/orders/{o}") for o in (ann, ben, cat)},
            "recall": ("recall", f"/recalls/{recall_id}"),
            "trace forward": ("recall", f"/trace/lots/{bad['lot_id']}/forward"),
            "trace order": ("recall", f"/trace/orders/{cat}"),
        }
        before = await fetch_all(clients, paths)
        # Ctrl-C right after an upstream order: the drain lets the consumers take it first.
        await place_order(clients, eva, "EVA", sku, 1)
        assert await drain(first, say=print), "the drain did not finish"
        del before["inventory lot"], before["inventory history"]  # EVA's reservation moves them

    second = platform_on(home)
    async with running(second) as clients:
        # The retained outbox rows go out again to the new (empty) broker; every consumer
        # skips them by its inbox. Wait until that is all consumed, then compare.
        await assert_check_clean(second)
        print(f"re-published at restart: {await republished(second)}")
        after = await fetch_all(clients, paths)
        assert {label: after[label] for label in before} == before
        await allocated(clients, eva)

        assert [s["shipment_id"] for s in after[f"order {ann}"]["shipments"]] == [shipped[ann]]
        assert after[f"order {cat}"]["status"] == "shipped"
        assert after["recall"]["notified_customers"] == 1
        assert after["inventory recalled lot"]["status"] == "recalled"
        counts = await stock(clients, lot["lot_id"])
        assert (counts["received"], counts["shipped"]) == ("10", "3")
        assert (counts["on_hand"], counts["reserved"], counts["available"]) == ("7", "3", "4")

        dan = unique("SO")
        await place_order(clients, dan, "DAN", sku, 3)
        placed = await allocated(clients, dan)
        assert [(a["lot_id"], a["quantity"]) for a in placed["allocations"]] == [
            (lot["lot_id"], "3")
        ]
        counts = await stock(clients, lot["lot_id"])
        assert (counts["on_hand"], counts["reserved"], counts["available"]) == ("7", "6", "1")
        assert after["inventory lot"]["received"] == "10"
        await assert_check_clean(second)


# ------------------------------------------------ 3 and 4: kill -9 under the supervisor


@dataclass
class Supervised:
    platform: Platform
    clients: Clients
    supervisor: Supervisor


@pytest_asyncio.fixture(scope="module")
async def supervised() -> AsyncIterator[Supervised]:
    """One throwaway platform, watched by the supervisor as under `make run`, shared by the
    broker kill and the four service kills."""
    platform = platform_on(None)
    async with running(platform) as clients:
        supervisor = supervisor_of(platform, say=print)
        watching = asyncio.create_task(supervisor.run())
        try:
            yield Supervised(platform, clients, supervisor)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching


async def lot_ids(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        return {row["lot_id"] for row in await connection.fetch("SELECT lot_id::text FROM lots")}
    finally:
        await connection.close()


@dataclass
class ReceiptStream:
    """Lots received one after another over HTTP; `lots` holds those answered 201."""

    clients: Clients
    sku: str = field(default_factory=lambda: unique("STREAM"))
    lots: list[str] = field(default_factory=list)
    refused: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = await self.clients.receiving.post(
                    "/receipts", json={"sku": self.sku, "quantity": "5"}
                )
            except httpx.HTTPError:
                self.refused += 1
            else:
                if response.status_code == 201:
                    self.lots.append(response.json()["lot_id"])
                else:
                    self.refused += 1
            # Pacing of the load, not a wait for a condition.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.03)

    async def grown_by(self, count: int, *, timeout: float = 30) -> None:
        target = len(self.lots) + count

        async def grown() -> bool:
            return len(self.lots) >= target

        await wait_until(grown, timeout=timeout, what=f"{count} more lots received")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@pytest.mark.timeout(240)
async def test_a_broker_killed_mid_stream_loses_no_event_our_services_produced(
    supervised: Supervised,
) -> None:
    platform, clients, supervisor = supervised.platform, supervised.clients, supervised.supervisor
    assert platform.broker is not None
    assert platform.broker.process is not None
    urls = platform.database_urls
    stream = ReceiptStream(clients)
    stream.start()
    try:
        await stream.grown_by(5)
        # Inventory and recall stop consuming (SIGSTOP): what receiving publishes from now on
        # sits in the broker only, acknowledged and not consumed, when the broker dies.
        paused = [platform.processes[name].pid for name in ("inventory", "recall")]
        for pid in paused:
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
        try:
            start = len(stream.lots)
            await stream.grown_by(10)
            in_broker_only: list[str] = []

            async def published() -> bool:
                in_broker_only[:] = stream.lots[start:]
                return await outbox_drained(urls["receiving"])

            await wait_until(published, timeout=30, what="receiving's outbox published")
            consumed = await lot_ids(urls["inventory"]) | await lot_ids(urls["recall"])
            assert not consumed & set(in_broker_only)
            killed = time.monotonic()
            platform.broker.process.kill()
        finally:
            for pid in paused:
                if pid is not None:
                    os.kill(pid, signal.SIGCONT)

        async def broker_back() -> bool:
            broker = platform.broker
            return (
                supervisor.restarts.get("broker") == 1
                and broker is not None
                and await broker.is_ready()
            )

        await wait_until(broker_back, timeout=60, what="the broker restarted")
        print(f"broker back {time.monotonic() - killed:.1f} s after kill -9")
        await stream.grown_by(10, timeout=60)  # receipts go on after the restart
    finally:
        await stream.stop()

    print(
        f"{len(stream.lots)} lots received ({stream.refused} refused), "
        f"{len(in_broker_only)} of them only in the broker at the kill"
    )
    await assert_check_clean(platform, wait=90)
    received = set(stream.lots)
    assert received <= await lot_ids(urls["receiving"])
    assert received <= await lot_ids(urls["inventory"])
    assert received <= await lot_ids(urls["recall"])
    counts = await republished(platform)
    print(f"re-published after the broker kill: {counts}")
    assert counts["receiving"] >= len(in_broker_only)


RECOVERY: dict[str, float] = {}


async def platform_state(platform: Platform) -> str:
    """What explains a stalled flow: `lottrace check` (consumer lag, stuck outboxes) and the
    last lines each service logged."""
    _, report = await asyncio.to_thread(lottrace_check, platform, wait=0)
    tails = [f"--- {name}: {platform.processes[name].log_tail(15)}" for name in SERVICES]
    return "\n".join([report, *tails])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", SERVICES)
async def test_a_killed_service_serves_within_15_s_and_orders_sent_meanwhile_allocate(
    supervised: Supervised, service: str
) -> None:
    platform, clients, supervisor = supervised.platform, supervised.clients, supervised.supervisor
    sku = unique("KILL")
    lot = await receive(clients, sku, 10)
    await eventually(lambda: clients.inventory.get(f"/lots/{lot['lot_id']}"), lambda _: True)
    old = platform.processes[service].pid
    assert old is not None
    killed = time.monotonic()
    os.kill(old, signal.SIGKILL)
    orders = [unique("SO")]
    await place_order(clients, orders[0], "EVE", sku, 2)  # while it is down

    async def serving() -> bool:
        new = platform.processes[service].pid
        response = await getattr(clients, service).get("/readyz")
        return new not in (None, old) and response.status_code == 200

    await wait_until(serving, timeout=30, interval=0.1, what=f"{service} back")
    recovered = time.monotonic() - killed
    RECOVERY[service] = recovered
    print(f"{service} serves again {recovered:.1f} s after kill -9 (so far: {RECOVERY})")
    assert recovered < 15
    assert supervisor.restarts.get(service) == 1
    orders.append(unique("SO"))
    await place_order(clients, orders[1], "FAY", sku, 3)  # just after it is back
    for order in orders:
        try:
            await served(clients, order, timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{await platform_state(platform)}") from None
    counts = await stock(clients, lot["lot_id"])
    assert (counts["on_hand"], counts["reserved"], counts["available"]) == ("10", "5", "5")


# ------------------------------------------------------- 2. kill -9 of the process group

# `lottrace dev` as it runs under `make run` (durable PostgreSQL, the supervisor, drain on
# Ctrl-C), on free ports: `lottrace dev` itself takes no HTTP ports.
CHILD_PLATFORM = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from lottrace.devstack import Platform, run_until_interrupted

    config = json.loads(sys.argv[1])
    platform = Platform(
        kafka_port=config["kafka_port"],
        postgres_port=config["postgres_port"],
        http_ports=config["http_ports"],
        partitions=2,
        home=Path(config["home"]),
        extra_env=config["env"],
        service_env=config["service_env"],
    )
    sys.exit(asyncio.run(run_until_interrupted(platform)))
    """
)


def described_platform(home: Path) -> Platform:
    """The Platform a child process runs, as seen from here: ports, URLs, no processes."""
    platform = on_free_ports(partitions=2, home=home, extra_env=E2E_ENV, service_env=AUTO_SHIP)
    platform.processes = {
        name: ServiceProcess(name, port, {}, None) for name, port in platform.http_ports.items()
    }
    platform.bootstrap_servers = f"127.0.0.1:{platform.kafka_port}"
    platform.database_urls = {
        name: f"postgresql://postgres@127.0.0.1:{platform.postgres_port}/lottrace_{name}"
        for name in SERVICES
    }
    return platform


def start_child(platform: Platform, output: Path) -> subprocess.Popen[bytes]:
    config = {
        "kafka_port": platform.kafka_port,
        "postgres_port": platform.postgres_port,
        "http_ports": dict(platform.http_ports),
        "home": str(platform.home),
        "env": E2E_ENV,
        "service_env": AUTO_SHIP,
    }
    with open(output, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", CHILD_PLATFORM, json.dumps(config)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as `make run` in a terminal
        )


async def child_ready(platform: Platform, child: subprocess.Popen[bytes], output: Path) -> None:
    async with httpx.AsyncClient(timeout=3) as client:

        async def ready() -> bool:
            if child.poll() is not None:
                raise Hopeless(f"the platform exited with {child.returncode}: see {output}")
            for url in platform.urls().values():
                if (await client.get(f"{url}/readyz")).status_code != 200:
                    return False
            return True

        await wait_until(ready, timeout=120, interval=0.2, what="the child platform ready")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (any session), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class OrderStream:
    """Orders placed upstream one after another; `acked` those the broker acknowledged."""

    bootstrap: str
    sku: str
    sent: dict[str, str] = field(default_factory=dict)  # event id -> order id, all tried
    acked: dict[str, str] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=3000,
        )
        await producer.start()
        try:
            while not self._stop.is_set():
                event_id, order_id = str(uuid.uuid4()), unique("SO")
                event = OrderPlaced(
                    order_id=order_id,
                    customer={"customer_id": "GIL", "name": "Gil", "email": "gil@example.com"},
                    lines=[{"line_no": 1, "sku": self.sku, "quantity": 1}],
                )
                message = encode(event, source=ORDER_SOURCE, event_id=event_id)
                self.sent[event_id] = order_id
                await producer.send_and_wait(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
                self.acked[event_id] = order_id
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.03)  # pacing of the load
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):  # the broker died under it
                await self._task


async def consumed_event_ids(database_url: str, topic: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT event_id FROM inbox WHERE topic = $1", topic)
        return {row["event_id"] for row in rows}
    finally:
        await connection.close()


@pytest.mark.timeout(240)
async def test_kill_9_of_the_platform_process_group_mid_stream_loses_nothing_acknowledged(
    home: Path,
) -> None:
    described = described_platform(home)
    output = home.parent / "platform.out"
    child = start_child(described, output)
    stream: ReceiptStream | None = None
    orders: OrderStream | None = None
    try:
        await child_ready(described, child, output)
        described.admin_key = DataHome(home).key_file.read_text().strip()
        clients = Clients(described)
        try:
            sku = unique("FLOW")
            stocked = await receive(clients, sku, 1000)
            await eventually(
                lambda: clients.inventory.get(f"/lots/{stocked['lot_id']}"), lambda _: True
            )
            stream = receipts = ReceiptStream(clients)
            orders = placing = OrderStream(described.bootstrap_servers, sku)
            receipts.start()
            placing.start()

            async def flowing() -> bool:
                served = 0
                for order_id in list(placing.acked.values())[:8]:
                    response = await clients.fulfillment.get(f"/orders/{order_id}")
                    served += response.status_code == 200 and order_served(response.json())
                return served >= 8 and len(receipts.lots) >= 10

            await wait_until(flowing, timeout=60, what="orders and receipts flowing")
            doomed = descendants(child.pid)
            os.killpg(child.pid, signal.SIGKILL)  # the group: the platform and its services
            child.wait(10)
            print(f"kill -9 of the platform's process group ({len(doomed)} processes below)")
            await receipts.stop()
            await placing.stop()
        finally:
            await clients.close()

        async def all_gone() -> bool:
            return not any(alive(pid) for pid in doomed)

        # PostgreSQL and the broker run in sessions of their own: they follow their parent
        # (PR_SET_PDEATHSIG), PostgreSQL with an immediate shutdown.
        await wait_until(all_gone, timeout=30, what="every process of the platform gone")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        if stream is not None:
            await stream.stop()
        if orders is not None:
            await orders.stop()
    assert stream is not None
    assert orders is not None

    second = platform_on(home)
    second.service_env = AUTO_SHIP
    async with running(second) as clients:
        urls = second.database_urls
        received = {stocked["lot_id"], *stream.lots}
        assert received <= await lot_ids(urls["receiving"]), "a lot answered 201 is gone"
        # order-placed has two consumers, inventory (allocates) and fulfillment (the order).
        by_inventory = await consumed_event_ids(urls["inventory"], "order-placed")
        by_fulfillment = await consumed_event_ids(urls["fulfillment"], "order-placed")
        both = [o for e, o in orders.sent.items() if e in by_inventory and e in by_fulfillment]
        half = {
            order: "inventory" if event in by_inventory else "fulfillment"
            for event, order in orders.sent.items()
            if (event in by_inventory) != (event in by_fulfillment)
        }
        unconsumed = [o for e, o in orders.acked.items() if e not in by_inventory | by_fulfillment]
        print(
            f"before the kill: {len(stream.lots)} lots answered 201; {len(orders.acked)} orders "
            f"acknowledged by the broker: {len(both)} consumed by inventory and fulfillment, "
            f"{len(half)} by one of them only {half}, {len(unconsumed)} by neither (lost with "
            "the broker's memory)"
        )
        assert len(both) >= 8
        for order_id in both:
            await served(clients, order_id)
        await assert_check_clean(second, wait=90)
        counts = await stock(clients, stocked["lot_id"])
        assert counts["shipped"] == str(len(both))
        for order_id, consumer in half.items():  # a known gap: shown, not asserted
            response = await clients.fulfillment.get(f"/orders/{order_id}")
            print(
                f"  {order_id} (only {consumer} consumed it): {response.status_code} "
                f"{response.json().get('status')}"
            )
        print(f"re-published after the restart: {await republished(second)}")
