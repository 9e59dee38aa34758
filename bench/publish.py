"""`python -m bench.publish`: what the relay's producer spends a record, per-record `send`
against per-partition record batches (`shared.runtime.publish.BatchPublisher`), on the
embedded broker. Both publish the same records (a recall's notices: one key, about 700
bytes) in rounds of the relay's batch size, alternating, and wait for every acknowledgement.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer

from lottrace.infra import TansuBroker
from shared.contracts.envelope import OutgoingMessage
from shared.runtime.kafka import ensure_topics, make_producer
from shared.runtime.publish import BatchPublisher
from shared.runtime.settings import KafkaSettings

ROUND = 2_000  # the relay's default batch of outbox rows
TOPIC = "recall-issued"
Way = Callable[[AIOKafkaProducer, Sequence[OutgoingMessage]], Awaitable[None]]


def _notices(count: int) -> list[OutgoingMessage]:
    headers = [
        ("content-type", b"application/cloudevents+json"),
        ("ce_type", b"lottrace.recall-customer-notice.v1"),
        ("ce_source", b"/lottrace/recall"),
    ]
    return [
        OutgoingMessage(
            TOPIC, b"R-2026-0001", b"{" + b"n" * 700 + b"}", [("ce_id", b"%036d" % n), *headers]
        )
        for n in range(count)
    ]


async def per_record(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    for start in range(0, len(messages), ROUND):
        futures = [
            await producer.send(m.topic, value=m.value, key=m.key, headers=m.headers)
            for m in messages[start : start + ROUND]
        ]
        await asyncio.gather(*futures)


async def batched(producer: AIOKafkaProducer, messages: Sequence[OutgoingMessage]) -> None:
    publisher = BatchPublisher(producer)
    for start in range(0, len(messages), ROUND):
        await publisher.publish(messages[start : start + ROUND])


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(way: Way, producer: AIOKafkaProducer, messages: list[OutgoingMessage]) -> float:
    cpu = _cpu_seconds()
    await way(producer, messages)
    return _cpu_seconds() - cpu


async def measure(records: int, rounds: int) -> dict[str, list[float]]:
    """Producer CPU seconds of each way, for `records` records, `rounds` times each."""
    broker = TansuBroker()
    await broker.start()
    try:
        settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        await ensure_topics(settings, [TOPIC], partitions=3)
        producer = make_producer(
            settings.model_copy(update={"enable_idempotence": False}), service="bench"
        )
        await producer.start()
        try:
            messages = _notices(records)
            seconds: dict[str, list[float]] = {"per_record": [], "batched": []}
            for _ in range(rounds):
                seconds["per_record"].append(await _timed(per_record, producer, messages))
                seconds["batched"].append(await _timed(batched, producer, messages))
            return seconds
        finally:
            await producer.stop()
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.publish", description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    started = time.perf_counter()
    seconds = asyncio.run(measure(arguments.records, arguments.rounds))
    for way, runs in seconds.items():
        per = statistics.median(runs) / arguments.records * 1e6
        shown = ", ".join(f"{s:.2f}" for s in runs)
        print(
            f"{way:>10}: producer CPU {shown} s for {arguments.records} records ({per:.1f} us each)"
        )
    ratio = statistics.median(seconds["per_record"]) / statistics.median(seconds["batched"])
    print(f"ratio per-record / batched: {ratio:.2f}x ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
