"""A consumer skips the events of its topics that it does not handle by their type alone."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord

from shared.contracts.envelope import Incoming, encode
from shared.contracts.events import RecallIssued
from shared.contracts.examples import examples
from shared.runtime.consumer import BatchConsumer
from shared.runtime.database import Database, UnitOfWork
from tests.kafka_helpers import binary_headers, consumer_record


def notice_value() -> bytes:
    [notice] = [event for _, event in examples() if event.event_type.endswith("notice.v1")]
    return encode(notice, source="/recall").value


def record(
    value: bytes, offset: int, headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    return consumer_record("recall-issued", value, key=b"RC-0001", offset=offset, headers=headers)


BINARY_NOTICE_HEADERS = binary_headers(
    "lottrace.recall-customer-notice.v1",
    event_id="notice-1",
    source="/recall",
    more=(("content-type", b"application/json"),),
)


async def never_called(unit: UnitOfWork, events: list[Incoming[Any]]) -> None:
    raise AssertionError("only recall summaries are handled")


async def test_notices_a_service_does_not_handle_are_skipped_unread_and_need_no_transaction() -> (
    None
):
    consumer = BatchConsumer(group_id="inventory", handlers=[(RecallIssued, never_called)])
    valid = notice_value()
    # Not the consumer's to judge: a notice breaking the contract is skipped too, not DLQ'd.
    broken = valid.replace(b'"shipments":[', b'"shipments":"none","was":[')
    assert broken != valid
    binary = record(b"{not json", 9, BINARY_NOTICE_HEADERS)
    closed = Database("postgresql://nowhere/none", source="/test")  # never opened

    outcome = await consumer.apply(closed, [record(valid, 7), record(broken, 8), binary])

    assert outcome.tally.logged() == {
        "processed": 0, "duplicates": 0, "ignored": 3, "dead_lettered": 0,
    }  # fmt: skip
    assert outcome.offsets == {("recall-issued", 0): 10}
