"""Recall: the genealogy and shipment projection in; recalls, notices and traces out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from services.recall import db
from services.recall.domain import (
    CheckLevel,
    NamedLot,
    NoticeTooLarge,
    check_level_of,
    lot_contradictions,
    made_from,
    refuse_below_target,
    target_of,
)
from services.recall.effectiveness import effectiveness_target, read_check
from services.recall.notices import NoticeBuilder, NoticeRequest, undeliverable_notice
from services.recall.records import (
    AffectedTotals,
    LotStatusRow,
    MovementRow,
    NewRecall,
    OpenRecallLot,
    PendingRecall,
    RecallLotRow,
    Received,
    ShipmentLineRow,
    Shipped,
)
from services.recall.responses import on_goods_returned, on_recall_responses
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    AffectedLot,
    GoodsReceived,
    GoodsReturned,
    LotMoved,
    LotStatusChanged,
    OrderShipped,
    RecallIssued,
    RecallResponse,
    RecallScope,
)
from shared.errors import Conflict, NotFound
from shared.ids import new_id
from shared.records import built_from, built_from_row
from shared.runtime import metrics
from shared.runtime.consumer import EventHandler, EventRejected
from shared.runtime.database import MAX_MESSAGE_BYTES, Connection, Database, Record, UnitOfWork
from shared.runtime.logging import get_logger
from shared.runtime.lookup import found

log = get_logger(__name__)


@dataclass(frozen=True)
class IssuedRecall:
    recall_id: str
    affected_lots: int
    affected_customer_count: int
    shipped_quantity: Decimal


class Recalls:
    def __init__(
        self,
        *,
        notice_chunk: int = 5000,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_shipments_per_notice: int | None = None,
    ) -> None:
        self.notice_chunk = notice_chunk
        self.max_message_bytes = max_message_bytes
        self.max_shipments_per_notice = max_shipments_per_notice
        self.notices_wanted = asyncio.Event()

    def _notices(self, unit: UnitOfWork) -> NoticeBuilder:
        return NoticeBuilder(
            source=unit.source,
            max_message_bytes=min(self.max_message_bytes, unit.max_message_bytes),
            max_shipments_per_notice=self.max_shipments_per_notice,
        )

    def handlers(self) -> list[tuple[type[Any], EventHandler]]:
        # Shipments before returns and responses: a batch's return of a lot counts the
        # shipment of it that came in the same batch.
        return [
            (GoodsReceived, self.on_goods_received),
            (OrderShipped, self.on_order_shipped),
            (GoodsReturned, on_goods_returned),
            (RecallResponse, on_recall_responses),
            (LotStatusChanged, self.on_lot_status_changed),
            (LotMoved, self.on_lot_moved),
        ]

    async def on_lot_status_changed(
        self, unit: UnitOfWork, events: list[Incoming[LotStatusChanged]]
    ) -> None:
        """Each lot's status, for the recall views: whether a recalled lot is held yet."""
        await db.record_lot_statuses(unit.connection, LotStatusRow.latest(events))

    async def on_lot_moved(self, unit: UnitOfWork, events: list[Incoming[LotMoved]]) -> None:
        """Moves and returns to vendor, for the lot's records (EPCIS, FSMA 204, its history)."""
        rows = [MovementRow.of(incoming) for incoming in events]
        await db.ensure_lots(unit.connection, [row.lot() for row in rows])
        await db.insert_movements(unit.connection, rows)

    # ------------------------------------------------------------------ projection

    async def on_goods_received(
        self, unit: UnitOfWork, events: list[Incoming[GoodsReceived]]
    ) -> None:
        connection = unit.connection
        received = Received.of(events)
        await db.upsert_lots(connection, received.lots)
        await db.insert_receipts(connection, received.receipts)
        if received.inputs:
            await db.ensure_lots(connection, [item.input_lot() for item in received.inputs])
            await db.insert_inputs(connection, received.inputs)
            await self._extend_open_recalls(unit, received)

    async def _extend_open_recalls(self, unit: UnitOfWork, received: Received) -> None:
        """A lot made from a recalled lot after the recall joins it: its shipments will be
        late notices of that recall."""
        recalled = await db.open_recalls_of_lots(
            unit.connection, [item.input_lot_id for item in received.inputs]
        )
        if not recalled:
            return
        by_input = _by_lot(recalled)
        lots = {lot.lot_id: lot for lot in received.lots}
        additions = [
            RecallLotRow(
                recall_id=row.recall_id,
                lot_id=item.lot_id,
                lot_code=lots[item.lot_id].lot_code,
                sku=lots[item.lot_id].sku,
                supplier_id=lots[item.lot_id].supplier_id,
                via_lot_id=row.via_lot_id or item.input_lot_id,
            )
            for item in received.inputs
            for row in by_input.get(item.input_lot_id, ())
        ]
        await db.add_recall_lots(unit.connection, additions)
        for addition in additions:
            log.warning(
                "lot made from a recalled lot joins the recall",
                recall_id=addition.recall_id,
                lot_id=str(addition.lot_id),
                lot_code=addition.lot_code,
            )

    async def on_order_shipped(
        self, unit: UnitOfWork, events: list[Incoming[OrderShipped]]
    ) -> None:
        connection = unit.connection
        await db.lock_shipments_shared(connection)
        await _refuse_contradicted_lots(connection, events)
        shipped = Shipped.of(events)
        await db.upsert_customers(connection, shipped.historical_customers, history=True)
        await db.upsert_customers(connection, shipped.customers)
        await db.ensure_lots(connection, [line.lot() for line in shipped.lines])
        new_lines = await db.insert_shipment_lines(connection, shipped.lines)
        if new_lines:
            await self._late_notices(unit, new_lines)

    async def _late_notices(self, unit: UnitOfWork, new_lines: Sequence[ShipmentLineRow]) -> None:
        """Shipments of a recalled lot that became known after the recall: notify again."""
        lot_ids = {line.lot_id for line in new_lines}
        recalled = await db.open_recalls_of_lots(unit.connection, lot_ids)
        if not recalled:
            return
        recalls_by_lot = _by_lot(recalled)
        per_notice: dict[tuple[str, str], list[ShipmentLineRow]] = defaultdict(list)
        about: dict[str, OpenRecallLot] = {}
        for line in new_lines:
            for recall in recalls_by_lot.get(line.lot_id, ()):
                per_notice[(recall.recall_id, line.customer_id)].append(line)
                about[recall.recall_id] = recall
        customers = await db.customers_by_id(unit.connection, {c for _, c in per_notice})
        for (recall_id, customer_id), lines in per_notice.items():
            recall = about[recall_id]
            request = NoticeRequest(
                recall_id=recall_id,
                reason=recall.reason,
                classification=recall.classification,
                customer=customers[customer_id],
                shipments=[line.notice_shipment() for line in lines],
                late=True,
            )
            await self.send(unit, request)
            log.warning(
                "late shipment of a recalled lot notified",
                recall_id=recall_id,
                customer_id=customer_id,
                order_ids=sorted({line.order_id for line in lines}),
            )

    # ------------------------------------------------------------------ issuing

    async def issue(
        self,
        unit: UnitOfWork,
        *,
        reason: str,
        classification: str,
        scope: RecallScope,
        actor: str,
        check_level: CheckLevel | None = None,
        target_percent: Decimal | None = None,
    ) -> IssuedRecall:
        connection = unit.connection
        await db.lock_shipments_exclusive(connection)
        affected = await affected_lots(connection, scope)
        recall = NewRecall(
            recall_id=new_id(),
            issued_at=datetime.now(UTC),
            reason=reason,
            classification=classification,
            scope=scope.model_dump(mode="json", exclude_none=True),
            requested_by=actor,
            check_level=check_level_of(classification, check_level),
            target_percent=target_of(classification, target_percent),
        )
        lots = [RecallLotRow.of(recall.recall_id, lot) for lot in affected]
        totals = await db.create_recall(connection, recall, lots, chunk_size=self.notice_chunk)
        unit.emit(recall_issued(recall, scope, affected, totals), time=recall.issued_at)
        log.info(
            "recall issued",
            recall_id=recall.recall_id,
            lots=len(affected),
            customers=totals.customers,
        )
        return IssuedRecall(
            recall.recall_id, len(affected), totals.customers, totals.shipped_quantity
        )

    # ------------------------------------------------------------------ closing

    async def close(
        self,
        unit: UnitOfWork,
        recall_id: str,
        *,
        actor: str,
        note: str | None,
        override: str | None,
    ) -> IssuedRecall:
        """Close an open recall. Refused (`below_target`) while its effectiveness is below its
        target, unless `override` says why it closes anyway: that reason is kept with the
        actor. Refused (`recall_closed`) once it is closed, by this or another request."""
        connection = unit.connection
        recall = found(await db.get_recall(connection, recall_id), "recall", recall_id)
        if recall["status"] == "closed":
            raise Conflict("recall_closed", f"recall {recall_id} is closed already")
        check = await read_check(connection, recall)
        refuse_below_target(
            check.total.exact_percent, effectiveness_target(recall), override=override
        )
        closed = await db.close_recall(
            connection, recall_id, actor=actor, note=note, override=override
        )
        if closed is None:  # another request closed it meanwhile
            raise Conflict("recall_closed", f"recall {recall_id} is closed already")
        return built_from_row(IssuedRecall, recall, affected_lots=closed["affected_lots"])

    # ------------------------------------------------------------------ notices

    async def notify_chunk(self, unit: UnitOfWork) -> int:
        """Emit the notices of the next chunk of affected customers; returns how many customers.

        PostgreSQL builds and writes the notices that fit whole (one statement for the whole
        chunk, no row through Python); a customer whose notice is over the message limit is
        handled here, split by encoded size."""
        connection = unit.connection
        recall = await db.recall_with_pending_notices(connection)
        if recall is None:
            return 0
        chunk = await db.take_chunk(connection, recall.recall_id)
        if chunk is None:
            await db.finish_notices_if_done(connection, recall.recall_id)
            return 0
        to_split = await db.write_notices(
            connection,
            recall=recall,
            chunk=chunk,
            max_value_bytes=self._notices(unit).value_budget_for_sql,
            max_shipments=self.max_shipments_per_notice,
            source=unit.source,
        )
        unit.outbox_written_in_sql()
        for request in await notice_requests(connection, recall, to_split):
            await self.send(unit, request)
        await db.chunk_notified(connection, recall.recall_id, chunk.chunk)
        await db.finish_notices_if_done(connection, recall.recall_id)
        return chunk.customers

    async def send(self, unit: UnitOfWork, request: NoticeRequest) -> None:
        """Emit a customer's notices, or, when they cannot fit the message limit, dead-letter
        them with the reason: one customer never holds up the others."""
        try:
            built = self._notices(unit).build(request)
        except NoticeTooLarge as error:
            await self._undeliverable(unit, request, str(error))
            return
        for notice in built:
            unit.emit_message(notice.message)
        customer_id = request.customer.customer_id
        # The notice first: its `shipments` is the count the log keeps, not the request's list.
        records = [
            built_from(db.NoticeRecord, notice, request, customer_id=customer_id)
            for notice in built
        ]
        await db.record_notices(unit.connection, records)

    async def _undeliverable(self, unit: UnitOfWork, request: NoticeRequest, reason: str) -> None:
        customer_id = request.customer.customer_id
        unit.emit_message(undeliverable_notice(request, reason))
        await db.record_notice_failure(
            unit.connection,
            db.NoticeFailure(
                recall_id=request.recall_id,
                customer_id=customer_id,
                late=request.late,
                shipments=len(request.shipments),
                reason=reason,
            ),
        )
        metrics.RECALL_NOTICES_UNDELIVERABLE.inc()
        log.error(
            "recall notice cannot be sent; dead-lettered",
            recall_id=request.recall_id,
            customer_id=customer_id,
            reason=reason,
        )


# Chunks written at once. One chunk's statement is PostgreSQL CPU from end to end (it builds
# and writes 5,000 notices); a second worker keeps the second core busy meanwhile, and the
# relay publishes what either committed. More would only queue for the same two cores.
NOTICE_WORKERS = 2


async def run_notifier(
    recalls: Recalls,
    database: Database,
    *,
    idle_seconds: float = 5.0,
    workers: int = NOTICE_WORKERS,
) -> None:
    """Work through pending notices chunk by chunk, `workers` chunks at a time (each in its
    own transaction; SKIP LOCKED keeps them apart, as between replicas); woken when a recall
    is issued."""
    await asyncio.gather(*(_notify(recalls, database, idle_seconds) for _ in range(workers)))


async def _notify(recalls: Recalls, database: Database, idle_seconds: float) -> None:
    while True:
        try:
            started = time.monotonic()
            done = await database.run(recalls.notify_chunk)
            if done:
                log.debug(
                    "notice chunk committed", customers=done, chunk_s=time.monotonic() - started
                )
        except Exception as error:
            log.warning("notifier failed; retrying", error=str(error))
            done = 0
            await asyncio.sleep(1.0)
        if done:
            recalls.notices_wanted.set()  # there is work: an idle peer joins in
            continue
        recalls.notices_wanted.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recalls.notices_wanted.wait(), idle_seconds)


def recall_issued(
    recall: NewRecall, scope: RecallScope, affected: list[AffectedLot], totals: AffectedTotals
) -> RecallIssued:
    """The one builder of `recall-issued`."""
    return built_from(
        RecallIssued,
        recall,
        totals,
        scope=scope,
        affected_lots=affected,
        affected_customer_count=totals.customers,
    )


async def notice_requests(
    connection: Connection, recall: PendingRecall, customer_ids: Sequence[str]
) -> list[NoticeRequest]:
    """The notices of these customers known at the recall's issue, as notices.py builds them."""
    if not customer_ids:
        return []
    shipments = await db.customer_shipments(connection, recall, customer_ids)
    customers = await db.customers_by_id(connection, customer_ids)
    return [
        NoticeRequest(
            recall_id=recall.recall_id,
            reason=recall.reason,
            classification=recall.classification,
            customer=customers[customer_id],
            shipments=shipments[customer_id],
            late=False,
        )
        for customer_id in customer_ids
    ]


def _by_lot(rows: Sequence[OpenRecallLot]) -> dict[UUID, list[OpenRecallLot]]:
    by_lot: dict[UUID, list[OpenRecallLot]] = defaultdict(list)
    for row in rows:
        by_lot[row.lot_id].append(row)
    return by_lot


async def affected_lots(connection: Connection, scope: RecallScope) -> list[AffectedLot]:
    """The lots in scope, then every lot made from them at any depth, naming its root."""
    roots = await db.scope_roots(connection, scope)
    if not roots:
        raise NotFound("no_lots_in_scope", "no known lot matches the recall scope")
    root_ids = [row["lot_id"] for row in roots]
    via = made_from(root_ids, await db.genealogy_edges(connection, root_ids, forward=True))
    made = await db.lot_rows(connection, via)
    return [_affected_lot(row) for row in roots] + [
        _affected_lot(row, via[lot_id]) for lot_id, row in sorted(made.items())
    ]


def _affected_lot(row: Record, via_lot_id: UUID | None = None) -> AffectedLot:
    return built_from_row(AffectedLot, row, via_lot_id=via_lot_id)


async def _refuse_contradicted_lots(
    connection: Connection, events: Sequence[Incoming[OrderShipped]]
) -> None:
    """An imported shipment names its lot by the id its client looked up: one whose id is a
    known lot of another SKU or lot code is dead-lettered, never kept as that lot's."""
    named = [
        NamedLot(line.lot_id, line.sku, line.lot_code)
        for incoming in events
        if incoming.data.imported
        for line in incoming.data.lines
    ]
    if not named:
        return
    rows = await db.lot_rows(connection, {line.lot_id for line in named})
    known = {lot_id: built_from_row(NamedLot, row) for lot_id, row in rows.items()}
    if problems := lot_contradictions(named, known):
        raise EventRejected("; ".join(problems), error_type="lot_mismatch")
