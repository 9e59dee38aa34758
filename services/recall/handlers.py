"""Recall: the genealogy and shipment projection in; recalls, notices and traces out."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from services.recall import db
from services.recall.domain import NoticeTooLarge, made_from
from services.recall.notices import NoticeBuilder, NoticeRequest, undeliverable_notice
from shared.contracts.envelope import Incoming
from shared.contracts.events import (
    AffectedLot,
    Classification,
    GoodsReceived,
    OrderShipped,
    RecallIssued,
    RecallScope,
)
from shared.contracts.types import Customer
from shared.ids import new_id
from shared.runtime import metrics
from shared.runtime.consumer import EventHandler
from shared.runtime.database import MAX_MESSAGE_BYTES, Connection, Database, Record, UnitOfWork
from shared.runtime.logging import get_logger

log = get_logger(__name__)


class RecallError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


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
        return [(GoodsReceived, self.on_goods_received), (OrderShipped, self.on_order_shipped)]

    # ------------------------------------------------------------------ projection

    async def on_goods_received(
        self, unit: UnitOfWork, events: list[Incoming[GoodsReceived]]
    ) -> None:
        connection = unit.connection
        lots: dict[UUID, dict[str, Any]] = {}
        receipts = []
        inputs = []
        for incoming in events:
            event = incoming.data
            lot = lots.get(event.lot_id)
            if lot is None:
                lots[event.lot_id] = {
                    "lot_id": event.lot_id,
                    "lot_code": event.lot_code,
                    "sku": event.sku,
                    "gtin": event.gtin,
                    "uom": event.uom,
                    "supplier_id": event.supplier.supplier_id if event.supplier else None,
                    "supplier_name": event.supplier.name if event.supplier else None,
                    "supplier_lot_code": event.supplier_lot_code,
                    "purchase_order": event.purchase_order,
                    "location": event.location,
                    "production_date": event.production_date,
                    "expiry_date": event.expiry_date,
                    "best_before_date": event.best_before_date,
                    "received_at": event.received_at,
                    "quantity": event.quantity,
                }
            else:
                lot["quantity"] += event.quantity
                lot["received_at"] = min(lot["received_at"], event.received_at)
            receipts.append(
                {
                    "receipt_id": event.receipt_id,
                    "lot_id": event.lot_id,
                    "quantity": event.quantity,
                    "uom": event.uom,
                    "received_at": event.received_at,
                    "location": event.location,
                    "purchase_order": event.purchase_order,
                    "supplier_id": event.supplier.supplier_id if event.supplier else None,
                    "supplier_name": event.supplier.name if event.supplier else None,
                    "event_id": incoming.id,
                }
            )
            inputs += [
                {
                    "receipt_id": event.receipt_id,
                    "lot_id": event.lot_id,
                    "input_lot_id": item.lot_id,
                    "input_lot_code": item.lot_code,
                    "input_sku": item.sku,
                    "quantity": item.quantity,
                    "uom": item.uom,
                }
                for item in event.inputs
            ]
        await db.upsert_lots(connection, list(lots.values()))
        await db.insert_receipts(connection, receipts)
        if inputs:
            await db.ensure_lots(
                connection,
                [
                    (i["input_lot_id"], i["input_lot_code"], i["input_sku"], i["uom"])
                    for i in inputs
                ],
            )
            await db.insert_inputs(connection, inputs)
            await self._extend_open_recalls(unit, inputs, lots)

    async def _extend_open_recalls(
        self, unit: UnitOfWork, inputs: list[dict[str, Any]], lots: dict[UUID, dict[str, Any]]
    ) -> None:
        """A lot made from a recalled lot after the recall joins it: its shipments will be
        late notices of that recall."""
        recalled = await db.open_recalls_of_lots(
            unit.connection, [i["input_lot_id"] for i in inputs]
        )
        if not recalled:
            return
        by_input: dict[UUID, list[Record]] = defaultdict(list)
        for row in recalled:
            by_input[row["lot_id"]].append(row)
        additions = []
        for item in inputs:
            for row in by_input.get(item["input_lot_id"], ()):
                lot = lots[item["lot_id"]]
                additions.append(
                    (
                        row["recall_id"],
                        item["lot_id"],
                        lot["lot_code"],
                        lot["sku"],
                        lot["supplier_id"],
                        row["via_lot_id"] or item["input_lot_id"],
                    )
                )
        await db.add_recall_lots(unit.connection, additions)
        for recall_id, lot_id, lot_code, *_ in additions:
            log.warning(
                "lot made from a recalled lot joins the recall",
                recall_id=recall_id,
                lot_id=str(lot_id),
                lot_code=lot_code,
            )

    async def on_order_shipped(
        self, unit: UnitOfWork, events: list[Incoming[OrderShipped]]
    ) -> None:
        connection = unit.connection
        await db.lock_shipments_shared(connection)
        customers: dict[str, dict[str, Any]] = {}
        lines = []
        for incoming in events:
            shipment = incoming.data
            customer = shipment.customer
            customers[customer.customer_id] = {
                "customer_id": customer.customer_id,
                "name": customer.name,
                "email": customer.email,
                "phone": customer.phone,
                "address": customer.address.model_dump(mode="json") if customer.address else None,
            }
            lines += [
                {
                    "shipment_id": shipment.shipment_id,
                    "line_no": line.line_no,
                    "lot_id": line.lot_id,
                    "order_id": shipment.order_id,
                    "customer_id": customer.customer_id,
                    "sku": line.sku,
                    "lot_code": line.lot_code,
                    "quantity": line.quantity,
                    "uom": line.uom,
                    "shipped_at": shipment.shipped_at,
                }
                for line in shipment.lines
            ]
        await db.upsert_customers(connection, list(customers.values()))
        await db.ensure_lots(
            connection, [(row["lot_id"], row["lot_code"], row["sku"], row["uom"]) for row in lines]
        )
        new_lines = await db.insert_shipment_lines(connection, lines)
        if new_lines:
            await self._late_notices(unit, new_lines)

    async def _late_notices(self, unit: UnitOfWork, new_lines: Sequence[Record]) -> None:
        """Shipments of a recalled lot that became known after the recall: notify again."""
        recalled = await db.open_recalls_of_lots(
            unit.connection, {line["lot_id"] for line in new_lines}
        )
        if not recalled:
            return
        recalls_by_lot: dict[UUID, list[Record]] = defaultdict(list)
        for row in recalled:
            recalls_by_lot[row["lot_id"]].append(row)
        per_notice: dict[tuple[str, str], list[Record]] = defaultdict(list)
        about: dict[str, Record] = {}
        for line in new_lines:
            for recall in recalls_by_lot.get(line["lot_id"], ()):
                per_notice[(recall["recall_id"], line["customer_id"])].append(line)
                about[recall["recall_id"]] = recall
        customers = await db.customers_by_id(
            unit.connection, {customer for _, customer in per_notice}
        )
        for (recall_id, customer_id), shipments in per_notice.items():
            recall = about[recall_id]
            request = NoticeRequest(
                recall_id=recall_id,
                reason=recall["reason"],
                classification=recall["classification"],
                customer=_customer(customers.get(customer_id), customer_id),
                shipments=[db.notice_shipment(line) for line in shipments],
                late=True,
            )
            await self._send(unit, request)
        for (recall_id, customer_id), late_lines in per_notice.items():
            log.warning(
                "late shipment of a recalled lot notified",
                recall_id=recall_id,
                customer_id=customer_id,
                order_ids=sorted({line["order_id"] for line in late_lines}),
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
    ) -> IssuedRecall:
        connection = unit.connection
        await db.lock_shipments_exclusive(connection)
        roots = await db.scope_roots(
            connection,
            lot_ids=scope.lot_ids,
            lot_codes=scope.lot_codes,
            sku=scope.sku,
            supplier_id=scope.supplier_id,
            received_from=scope.received_from,
            received_to=scope.received_to,
        )
        if not roots:
            raise RecallError(404, "no_lots_in_scope", "no known lot matches the recall scope")
        affected = await _affected_lots(connection, roots)
        recall_id = new_id()
        issued_at = datetime.now(UTC)
        customers, quantity = await db.create_recall(
            connection,
            recall_id=recall_id,
            issued_at=issued_at,
            reason=reason,
            classification=classification,
            scope=scope.model_dump(mode="json", exclude_none=True),
            requested_by=actor,
            lots=[(a.lot_id, a.lot_code, a.sku, a.supplier_id, a.via_lot_id) for a in affected],
            chunk_size=self.notice_chunk,
        )
        unit.emit(
            RecallIssued(
                recall_id=recall_id,
                issued_at=issued_at,
                reason=reason,
                classification=cast("Classification", classification),
                scope=scope,
                affected_lots=affected,
                affected_customer_count=customers,
                shipped_quantity=quantity,
            ),
            time=issued_at,
        )
        log.info("recall issued", recall_id=recall_id, lots=len(affected), customers=customers)
        return IssuedRecall(recall_id, len(affected), customers, quantity)

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
        recall_id = recall["recall_id"]
        chunk = await db.take_chunk(connection, recall_id)
        if chunk is None:
            await db.finish_notices_if_done(connection, recall_id)
            return 0
        notices = self._notices(unit)
        to_split = await db.write_notices(
            connection,
            recall=recall,
            first_customer=chunk["first_customer"],
            last_customer=chunk["last_customer"],
            max_value_bytes=notices.value_budget_for_sql,
            max_shipments=self.max_shipments_per_notice,
            source=unit.source,
        )
        unit.outbox_written_in_sql()
        if to_split:
            await self._notify_in_parts(unit, recall, to_split)
        await db.chunk_notified(connection, recall_id, chunk["chunk"])
        await db.finish_notices_if_done(connection, recall_id)
        return int(chunk["customers"])

    async def _notify_in_parts(
        self, unit: UnitOfWork, recall: Record, customer_ids: list[str]
    ) -> None:
        connection = unit.connection
        shipments = await db.customer_shipments(
            connection, recall["recall_id"], customer_ids, recall["shipment_watermark"]
        )
        customers = await db.customers_by_id(connection, customer_ids)
        for customer_id in customer_ids:
            request = NoticeRequest(
                recall_id=recall["recall_id"],
                reason=recall["reason"],
                classification=recall["classification"],
                customer=_customer(customers.get(customer_id), customer_id),
                shipments=shipments[customer_id],
                late=False,
            )
            await self._send(unit, request)

    async def _send(self, unit: UnitOfWork, request: NoticeRequest) -> None:
        """Emit a customer's notices, or, when they cannot fit the message limit, dead-letter
        them with the reason: one customer never holds up the others."""
        try:
            built = self._notices(unit).build(request)
        except NoticeTooLarge as error:
            await self._undeliverable(unit, request, str(error))
            return
        for notice in built:
            unit.emit_message(notice.message)
        await db.record_notices(
            unit.connection,
            [
                db.NoticeRecord(
                    event_id=notice.event_id,
                    recall_id=request.recall_id,
                    customer_id=request.customer.customer_id,
                    late=request.late,
                    shipments=notice.shipments,
                    part=notice.part,
                    parts=notice.parts,
                )
                for notice in built
            ],
        )

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


async def run_notifier(recalls: Recalls, database: Database, *, idle_seconds: float = 5.0) -> None:
    """Work through pending notices chunk by chunk; woken when a recall is issued."""
    while True:
        try:
            done = await database.run(recalls.notify_chunk)
        except Exception as error:
            log.warning("notifier failed; retrying", error=str(error))
            done = 0
            await asyncio.sleep(1.0)
        if done:
            continue
        recalls.notices_wanted.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recalls.notices_wanted.wait(), idle_seconds)


async def _affected_lots(connection: Connection, roots: Sequence[Record]) -> list[AffectedLot]:
    """The lots in scope, then every lot made from them at any depth, naming its root."""
    root_ids = [row["lot_id"] for row in roots]
    via = made_from(root_ids, await db.genealogy_edges(connection, root_ids, forward=True))
    made = await db.lot_rows(connection, via)
    in_scope = [
        AffectedLot(
            lot_id=row["lot_id"],
            lot_code=row["lot_code"],
            sku=row["sku"],
            supplier_id=row["supplier_id"],
        )
        for row in roots
    ]
    return in_scope + [
        AffectedLot(
            lot_id=lot_id,
            lot_code=row["lot_code"],
            sku=row["sku"],
            supplier_id=row["supplier_id"],
            via_lot_id=via[lot_id],
        )
        for lot_id, row in sorted(made.items())
    ]


def _customer(row: Record | None, customer_id: str) -> Customer:
    if row is None:
        return Customer(customer_id=customer_id)
    return Customer.model_validate(
        {
            key: row[key]
            for key in ("customer_id", "name", "email", "phone", "address")
            if row[key] is not None
        }
    )
