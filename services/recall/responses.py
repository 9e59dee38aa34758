"""What comes back from a recall: customers' responses, and returned units of recalled lots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from uuid import UUID

from services.recall import db
from services.recall.domain import ResponseRefused, refuse_unknown, reported_lot, return_recalls
from services.recall.records import RecallLotRef, ReportedUnitsRow, ResponseRow, ReturnCountRow
from shared.contracts.envelope import Incoming
from shared.contracts.events import GoodsReturned, RecallResponse, ReturnLine
from shared.records import built_from
from shared.runtime.consumer import EventRejected
from shared.runtime.database import Connection, UnitOfWork
from shared.runtime.logging import get_logger

log = get_logger(__name__)


async def on_recall_responses(unit: UnitOfWork, events: list[Incoming[RecallResponse]]) -> None:
    """Responses from notification services; one that cannot count goes to the DLQ, saying why."""
    try:
        await record_responses(unit.connection, [incoming.data for incoming in events])
    except ResponseRefused as error:
        raise EventRejected(error.message, error_type=error.code) from error


async def record_responses(connection: Connection, responses: Sequence[RecallResponse]) -> set[str]:
    """Store the responses not stored before (by response_id) with the units they report; all
    or nothing: raises ResponseRefused, naming why, when one of them cannot count."""
    unique = list({response.response_id: response for response in reversed(responses)}.values())
    states = await db.recall_states(connection, {r.recall_id for r in unique})
    affected = await db.affected_pairs(connection, {(r.recall_id, r.customer_id) for r in unique})
    lots: dict[str, list[RecallLotRef]] = defaultdict(list)
    for lot in await db.lots_of_recalls(connection, states):
        lots[lot.recall_id].append(lot)
    rows, units = [], []
    for response in unique:
        refuse_unknown(
            response.recall_id,
            response.customer_id,
            known=response.recall_id in states,
            affected=(response.recall_id, response.customer_id) in affected,
        )
        units += _reported(response, lots[response.recall_id])
        rows.append(ResponseRow.of(response))
    new = await db.insert_responses(connection, rows)
    await db.insert_reported_units(connection, [row for row in units if row.response_id in new])
    return new


def _reported(response: RecallResponse, lots: Sequence[RecallLotRef]) -> list[ReportedUnitsRow]:
    return [
        ReportedUnitsRow.of(response, units, reported_lot(units, lots).lot_id)
        for units in response.units
    ]


async def on_goods_returned(unit: UnitOfWork, events: list[Incoming[GoodsReturned]]) -> None:
    """Units of a recalled lot an affected customer sent back count as recovered for the recall
    the return names, or else for every open recall of the lot. Other returns are not the
    recall's concern (inventory holds them for inspection)."""
    connection = unit.connection
    lines = [(incoming.data, line) for incoming in events for line in incoming.data.lines]
    by_code = await db.lot_ids_by_code(
        connection, {(line.lot_code, line.sku) for _, line in lines if line.lot_code}
    )

    def lot_of(line: ReturnLine) -> UUID | None:
        return line.lot_id or by_code.get((line.lot_code or "", line.sku))

    recalls: dict[UUID, list[tuple[str, str]]] = defaultdict(list)
    named = {lot for _, line in lines if (lot := lot_of(line)) is not None}
    for row in await db.recalls_of_lots(connection, named):
        recalls[row.lot_id].append((row.recall_id, row.status))
    candidates = [
        built_from(
            ReturnCountRow,
            line,
            event,
            recall_id=recall_id,
            lot_id=lot_id,
            customer_id=event.customer.customer_id,
        )
        for event, line in lines
        if (lot_id := lot_of(line)) is not None
        for recall_id in return_recalls(event.recall_id, recalls[lot_id])
    ]
    affected = await db.affected_pairs(
        connection, {(c.recall_id, c.customer_id) for c in candidates}
    )
    counted = [c for c in candidates if (c.recall_id, c.customer_id) in affected]
    await db.insert_return_counts(connection, counted)
    if counted:
        log.info("returned units of recalled lots counted", lines=len(counted))
