"""Reminders: another notice, `reminder: n`, to each affected customer still silent after the
configured delay, up to the configured number; never after close, never the same n twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.recall import db
from services.recall.domain import DEFAULT_REMINDER_DELAY, reminder_due
from services.recall.effectiveness import standings_of
from services.recall.handlers import Recalls, notice_requests
from services.recall.records import PendingRecall
from shared.runtime.database import Database, UnitOfWork
from shared.runtime.logging import get_logger
from shared.runtime.periodic import every

log = get_logger(__name__)

# A reminder names every shipment of the recall's lots the customer received, late ones too.
EVERY_SHIPMENT = 2**62


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReminderPolicy:
    delay: timedelta = DEFAULT_REMINDER_DELAY
    most: int = 3
    per_round: int = 5000
    """Customers reminded per transaction."""


async def send_reminders(
    recalls: Recalls, unit: UnitOfWork, *, now: datetime, policy: ReminderPolicy
) -> int:
    """Send the reminders due at `now` for every open recall; returns how many went out."""
    sent = 0
    for recall_id in await db.recalls_to_remind(unit.connection):
        sent += await _remind(recalls, unit, recall_id, now=now, policy=policy)
        if sent >= policy.per_round:
            break
    return sent


async def _remind(
    recalls: Recalls, unit: UnitOfWork, recall_id: str, *, now: datetime, policy: ReminderPolicy
) -> int:
    connection = unit.connection
    standings = await standings_of(connection, recall_id)
    due = [
        (standing.customer_id, number)
        for standing in standings
        if (number := reminder_due(standing, now=now, delay=policy.delay, most=policy.most))
    ][: policy.per_round]
    claimed = dict(await db.claim_reminders(connection, recall_id, due, now))
    if not claimed:
        return 0
    recall = await db.get_recall(connection, recall_id)
    assert recall is not None
    pending = PendingRecall(recall_id, recall["reason"], recall["classification"], EVERY_SHIPMENT)
    for request in await notice_requests(connection, pending, sorted(claimed)):
        await recalls.send(unit, replace(request, reminder=claimed[request.customer.customer_id]))
    log.info("recall reminders sent", recall_id=recall_id, customers=len(claimed))
    return len(claimed)


async def run_reminders(
    recalls: Recalls,
    database: Database,
    policy: ReminderPolicy,
    *,
    every_seconds: float,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Look for due reminders every `every_seconds`, with the time `clock` tells; at once
    again while a round found a full batch to send."""

    async def remind(unit: UnitOfWork) -> int:
        return await send_reminders(recalls, unit, now=clock(), policy=policy)

    await every(database, remind, seconds=every_seconds, what="reminders", again_while_busy=True)
