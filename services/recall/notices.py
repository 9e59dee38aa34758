"""Customer notices built from the contract model and split to fit the message limit.

The one builder of `lottrace.recall-customer-notice.v1` outside the set-based SQL path
(`db.write_notices`, which writes only the notices that fit whole and leaves the rest here).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from services.recall.domain import NoticeSize, NoticeTooLarge, split_for_notices
from shared.contracts.envelope import OutgoingMessage, encode
from shared.contracts.events import Classification, NoticeShipment, RecallCustomerNotice
from shared.contracts.topics import dead_letter_topic
from shared.contracts.types import Customer
from shared.runtime.consumer import why_headers

# Room for what the unit of work adds to a message after it is built (trace context headers).
HEADER_HEADROOM = 1024
# `part` and `parts` are reserved at this many digits each when measuring a notice.
_WIDEST_PART = 10**6 - 1


@dataclass(frozen=True)
class NoticeRequest:
    """Who is notified of which recall, about which shipments."""

    recall_id: str
    reason: str
    classification: str
    customer: Customer
    shipments: Sequence[NoticeShipment]
    late: bool
    reminder: int = 0


@dataclass(frozen=True)
class BuiltNotice:
    """One notice, encoded and within the limit, with what the recall's log records of it."""

    message: OutgoingMessage
    event_id: str
    shipments: int
    part: int
    parts: int


def entry_bytes(shipment: NoticeShipment) -> int:
    """What one shipment adds to an encoded notice (without the comma joining it)."""
    return len(shipment.model_dump_json(exclude_none=True).encode())


@dataclass(frozen=True)
class NoticeBuilder:
    """Builds a customer's notices, each at most `max_message_bytes` once encoded."""

    source: str
    max_message_bytes: int
    max_shipments_per_notice: int | None = None

    def build(self, request: NoticeRequest) -> list[BuiltNotice]:
        """The notices of one customer, in shipment order (`part` of `parts` when split), all
        encoded before any is emitted. Raises NoticeTooLarge when they cannot fit the limit."""
        parts = split_for_notices(
            request.shipments,
            size_of=entry_bytes,
            size=self._size(request),
            per_notice=self.max_shipments_per_notice,
        )
        built = [
            self._encode(request, part, number, len(parts)) for number, part in enumerate(parts, 1)
        ]
        for notice in built:
            if notice.message.size > self.max_message_bytes:
                raise NoticeTooLarge(
                    f"notice part {notice.part} of {notice.message.size} bytes exceeds the"
                    f" {self.max_message_bytes}-byte message limit"
                )
        return built

    def _encode(
        self, request: NoticeRequest, shipments: Sequence[NoticeShipment], number: int, of: int
    ) -> BuiltNotice:
        split = of > 1
        notice = _notice(
            request, shipments, number=number if split else None, of=of if split else None
        )
        message = encode(notice, source=self.source)
        event_id = dict(message.headers)["ce_id"].decode()
        return BuiltNotice(message, event_id, len(shipments), number, of)

    def _size(self, request: NoticeRequest) -> NoticeSize:
        if not request.shipments:
            raise ValueError("a notice names at least one shipment")
        first = request.shipments[0]
        widest = _notice(request, [first], number=_WIDEST_PART, of=_WIDEST_PART)
        base = encode(widest, source=self.source).size - entry_bytes(first) + HEADER_HEADROOM
        return NoticeSize(base=base, limit=self.max_message_bytes)

    @property
    def value_budget_for_sql(self) -> int:
        """The most bytes of CloudEvent JSON the set-based path may write for one notice: the
        limit less its four headers, its key (a recall id of up to 200 characters) and the
        headroom."""
        headers = len("content-type") + len("application/cloudevents+json")
        headers += len("ce_id") + 36 + len("ce_type") + len(RecallCustomerNotice.event_type)
        headers += len("ce_source") + len(self.source.encode())
        return self.max_message_bytes - headers - 200 - HEADER_HEADROOM


def _notice(
    request: NoticeRequest,
    shipments: Sequence[NoticeShipment],
    *,
    number: int | None,
    of: int | None,
) -> RecallCustomerNotice:
    return RecallCustomerNotice(
        recall_id=request.recall_id,
        customer=request.customer,
        shipments=list(shipments),
        late=request.late,
        reason=request.reason,
        classification=cast("Classification", request.classification),
        part=number,
        parts=of,
        reminder=request.reminder,
    )


def undeliverable_notice(request: NoticeRequest, reason: str) -> OutgoingMessage:
    """The dead letter of a notice that cannot be sent: who waits, for which recall, and why.
    It names no source topic, so it is never replayed as it is: the notice is not in it."""
    summary = {
        "recall_id": request.recall_id,
        "customer_id": request.customer.customer_id,
        "late": request.late,
        "shipments": len(request.shipments),
        "reason": reason,
    }
    return OutgoingMessage(
        topic=dead_letter_topic(RecallCustomerNotice.topic),
        key=request.recall_id.encode(),
        value=json.dumps(summary).encode(),
        headers=[("content-type", b"application/json"), *why_headers("notice_too_large", reason)],
    )
