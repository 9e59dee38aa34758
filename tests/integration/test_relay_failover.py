"""Outbox relay failover against a real Tansu broker and PostgreSQL: when the process of the
active relay is killed (no graceful stop: its connection just dies), a relay of another
replica on the same database becomes leader and publishes what was left, in order, once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord

from lottrace.infra import TansuBroker, wait_until
from shared.contracts.events import OrderCancelled
from shared.runtime.migrations import RUNTIME_MIGRATIONS, migrate
from shared.runtime.outbox import RELAY_LOCK_KEY
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings
from tests.kafka_helpers import outbox_drained, read_settled, read_topic

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"
REPOSITORY = Path(__file__).resolve().parents[2]
KEY = "SO-failover"

# A replica as a process of its own: the shared runtime (database, outbox relay), no consumer.
REPLICA = """
import asyncio, sys
from pathlib import Path
from typing import Any
from shared.runtime.service import ServiceRuntime
from shared.runtime.settings import KafkaSettings, ServiceSettings

async def main() -> None:
    kafka = KafkaSettings(bootstrap_servers=sys.argv[2], enable_idempotence=False)
    settings = ServiceSettings(database_url=sys.argv[1], kafka=kafka)
    runtime = ServiceRuntime(name="probe", settings=settings, migrations=Path(sys.argv[3]))
    await runtime.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextlib.contextmanager
def replica_process(database_url: str, broker: TansuBroker) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", REPLICA, database_url, broker.bootstrap_servers, PROBE_MIGRATIONS],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


@contextlib.asynccontextmanager
async def replica_here(database_url: str, broker: TansuBroker) -> AsyncIterator[ServiceRuntime]:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    runtime = ServiceRuntime(
        name="probe",
        settings=ServiceSettings(database_url=database_url, kafka=kafka),
        migrations=PROBE_MIGRATIONS,
    )
    await runtime.start()
    try:
        await asyncio.wait_for(runtime.started.wait(), 60)
        yield runtime
    finally:
        await runtime.stop()


async def relay_locks(database_url: str) -> int:
    """Relay election locks granted in this database: held by the active relay. Only that
    lock: a replica starting up also holds the migrations' advisory lock for a moment, which
    is no leader (a key that fits 32 bits is `objid`, with `objsubid` 1)."""
    connection = await asyncpg.connect(database_url)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
                " AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1",
                RELAY_LOCK_KEY,
            )
        )
    finally:
        await connection.close()


async def emit(runtime: ServiceRuntime, numbers: range) -> None:
    """Events of one key, numbered in `reason`, five to a transaction."""
    for start in range(numbers.start, numbers.stop, 5):
        async with runtime.database.transaction() as unit:
            for n in range(start, min(start + 5, numbers.stop)):
                unit.emit(OrderCancelled(order_id=KEY, reason=str(n)))


def numbers(records: list[ConsumerRecord[Any, Any]]) -> list[int]:
    return [int(json.loads(record.value)["data"]["reason"]) for record in records]


async def test_a_relay_takes_over_when_the_leaders_process_is_killed(
    database_url: str, broker: TansuBroker
) -> None:
    bootstrap = broker.bootstrap_servers
    await migrate(database_url, [("runtime", RUNTIME_MIGRATIONS), ("probe", PROBE_MIGRATIONS)])
    with replica_process(database_url, broker) as leader:

        async def leader_elected() -> bool:
            return await relay_locks(database_url) > 0

        await wait_until(leader_elected, timeout=60, what="leader elected")
        async with replica_here(database_url, broker) as standby:
            assert standby.relay is not None
            await emit(standby, range(0, 5))
            published = await read_topic(bootstrap, "order-cancelled", at_least=5)
            assert numbers(published) == list(range(5))  # the other process's relay sent them
            await wait_until(lambda: outbox_drained(database_url), timeout=30, what="drained")

            leader.send_signal(signal.SIGSTOP)  # it still holds the lock, and sends nothing
            await emit(standby, range(5, 30))
            assert not standby.relay.is_leader
            leader.send_signal(signal.SIGKILL)  # no goodbye: the kernel closes its sockets

            async def took_over() -> bool:
                return standby.relay is not None and standby.relay.is_leader

            await wait_until(took_over, timeout=30, what="the standby relay takes over")
            records = await read_settled(bootstrap, "order-cancelled", database_url)

    assert numbers(records) == list(range(30))  # what was left, in order, nothing twice
