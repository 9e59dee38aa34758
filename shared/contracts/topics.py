"""The Kafka topics of the contract: what each carries, who writes and who reads it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.events import (
    Event,
    GoodsReceived,
    GoodsReturned,
    LotAllocated,
    LotMoved,
    LotRegistered,
    LotStatusChanged,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    RecallCustomerNotice,
    RecallIssued,
    RecallResponse,
)

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    events: tuple[type[Event], ...]
    producer: str
    consumers: tuple[str, ...]
    description: str

    @classmethod
    def carrying(
        cls,
        *events: type[Event],
        producer: str,
        consumers: tuple[str, ...],
        description: str,
    ) -> TopicSpec:
        """The topic its events name, keyed by the field they name: one home for both rules."""
        names = {event.topic for event in events}
        keys = {event.key_field for event in events}
        if len(names) != 1 or len(keys) != 1:
            raise ValueError(f"events of one topic disagree on topic or key: {names}, {keys}")
        return cls(names.pop(), keys.pop(), events, producer, consumers, description)

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(event.event_type for event in self.events)


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec.carrying(
        OrderPlaced,
        producer="upstream order systems",
        consumers=("inventory", "fulfillment"),
        description="Orders accepted upstream, to allocate by lot and to ship.",
    ),
    TopicSpec.carrying(
        OrderCancelled,
        producer="upstream order systems",
        consumers=("inventory", "fulfillment"),
        description="Orders withdrawn upstream: unshipped reservations are released.",
    ),
    TopicSpec.carrying(
        GoodsReceived,
        producer="receiving",
        consumers=("inventory", "recall"),
        description="Quantities of a lot entering stock, with the lot's genealogy.",
    ),
    TopicSpec.carrying(
        LotAllocated,
        producer="inventory",
        consumers=("fulfillment",),
        description="An order's current allocation, lot by lot, and its backorders.",
    ),
    TopicSpec.carrying(
        OrderShipped,
        producer="fulfillment",
        consumers=("inventory", "recall"),
        description="Shipments: which lots went to which customer.",
    ),
    TopicSpec.carrying(
        RecallIssued,
        RecallCustomerNotice,
        producer="recall",
        consumers=("notification services", "inventory", "fulfillment"),
        description="A recall summary, then one notice per affected customer.",
    ),
    TopicSpec.carrying(
        GoodsReturned,
        producer="upstream returns/WMS systems; inventory for `POST /returns`",
        consumers=("inventory", "recall"),
        description="Units customers sent back, by lot: held for inspection, or recalled stock.",
    ),
    TopicSpec.carrying(
        RecallResponse,
        producer="notification services, call centres; recall for `POST /recalls/{id}/responses`",
        consumers=("recall",),
        description="Customers' answers to a recall: delivered, bounced, acknowledged, units.",
    ),
    TopicSpec.carrying(
        LotStatusChanged,
        producer="inventory",
        consumers=("fulfillment", "recall", "operators"),
        description="Every change of a lot's status: hold, release, QC result, expiry, recall,"
        " depletion.",
    ),
    TopicSpec.carrying(
        LotMoved,
        producer="inventory",
        consumers=("recall",),
        description="Moves between locations and returns to vendor, for the lot's records"
        " (a lottrace addition beyond v1.1).",
    ),
    TopicSpec.carrying(
        LotRegistered,
        producer="receiving",
        consumers=("inventory", "recall"),
        description="Lots known without stock, such as those imported sold out (a lottrace"
        " addition beyond v1.1).",
    ),
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {topic.name: topic for topic in TOPICS}


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def all_topic_names() -> list[str]:
    """Every topic the platform needs, dead-letter topics included."""
    return [name for topic in TOPICS for name in (topic.name, topic.dlq)]
