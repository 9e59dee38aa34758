"""Recall HTTP routes: issue and follow recalls; trace lots forward and backward; FSMA 204
and EPCIS traceability reports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, StringConstraints, WithJsonSchema
from pydantic_core import to_json

from services.recall import db, quality, quality_check, reports
from services.recall.api_loop import router as loop_router
from services.recall.domain import (
    Edge,
    TraceNode,
    mermaid_genealogy,
    trace_customers,
    walk,
)
from services.recall.drills import DrillRequest, run_drill
from services.recall.fsma_export import fsma_sheet
from services.recall.handlers import IssuedRecall, Recalls
from services.recall.records import DrillRow, ReportFilter
from services.recall.schemas import (
    AffectedCustomer,
    CloseRequest,
    Consumed,
    CustomerShipment,
    DataQualityReport,
    LotMovement,
    LotMovements,
    LotSummary,
    OrderShipmentLine,
    RecallAccepted,
    RecallRequest,
    RecallView,
    TraceBackward,
    TraceForward,
    TraceInput,
    TraceLot,
    TraceOrder,
    TraceReceipt,
    TraceTotals,
    WaitingCustomer,
)
from shared.errors import Invalid, NotFound
from shared.records import built_from, built_from_row
from shared.runtime.actors import actor_of
from shared.runtime.auth import Role, requires
from shared.runtime.database import Record, UnitOfWork
from shared.runtime.http import Rfc3339Date, connection_of, database_of
from shared.runtime.logging import get_logger
from shared.runtime.lookup import found
from shared.tables import (
    TABLE_RESPONSES,
    XLSX_MEDIA_TYPE,
    TableFormat,
    TableTooLarge,
    attachment,
    csv_lines,
    report_response,
    streamed_response,
)
from shared.tables import ReportFormat as TableReportFormat

router = APIRouter()
# The loop's routes as plain routes of this router: each declares its role (http.py checks).
router.routes.extend(loop_router.routes)
log = get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

MAX_OFFSET = 2**63 - 1  # PostgreSQL's OFFSET is a bigint
MERMAID_MEDIA_TYPE = "text/vnd.mermaid"


def _recalls(request: Request) -> Recalls:
    recalls: Recalls = request.app.state.recalls
    return recalls


@router.post(
    "/recalls",
    status_code=202,
    tags=["recall"],
    summary="Issue a recall",
    dependencies=[requires(Role.RECALL_MANAGER)],
)
async def issue_recall(body: RecallRequest, request: Request) -> RecallAccepted:
    """Resolves the scope (following genealogy: lots made from a recalled lot are recalled
    too), emits `recall-issued`, then one `recall-customer-notice` per affected customer."""
    recalls = _recalls(request)
    actor = actor_of(request)
    if body.drill:
        return await _drill(body, request, actor)

    async def work(unit: UnitOfWork) -> IssuedRecall:
        return await recalls.issue(
            unit,
            reason=body.reason,
            classification=body.classification,
            scope=body.scope,
            actor=actor,
            check_level=body.check_level,
            target_percent=body.target_percent,
        )

    issued = await database_of(request).run(work)
    recalls.notices_wanted.set()
    return built_from(RecallAccepted, issued, status="open")


async def _drill(body: RecallRequest, request: Request, actor: str) -> RecallAccepted:
    """A drill is run at once and kept; it publishes nothing."""
    drill_request = DrillRequest(
        body.reason, body.classification, body.scope, body.check_level, actor
    )

    async def work(unit: UnitOfWork) -> DrillRow:
        return await run_drill(unit.connection, drill_request)

    drill = await database_of(request).run(work)
    return built_from(RecallAccepted, drill, recall_id=drill.drill_id, status="drill", drill=True)


async def _recall_or_404(connection: Any, recall_id: str) -> Record:
    return found(await db.get_recall(connection, recall_id), "recall", recall_id)


def _affected_customers(rows: list[Record]) -> list[AffectedCustomer]:
    customers: dict[str, AffectedCustomer] = {}
    for row in rows:
        customer = customers.get(row["customer_id"])
        if customer is None:
            customer = customers[row["customer_id"]] = built_from_row(
                AffectedCustomer, row, shipments=[]
            )
        customer.shipments.append(built_from_row(CustomerShipment, row))
    return list(customers.values())


@router.get(
    "/recalls/{recall_id}",
    tags=["recall"],
    summary="A recall: status, lots, customers",
    dependencies=[requires(Role.VIEWER)],
)
async def get_recall(
    recall_id: str,
    request: Request,
    customers_limit: Annotated[int, Query(ge=0, le=10_000)] = 1000,
    customers_offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> RecallView:
    async with connection_of(request) as connection:
        recall = await _recall_or_404(connection, recall_id)
        lots = await db.recall_lots(connection, recall_id)
        rows = await db.recall_customer_lines(
            connection, recall_id, limit=customers_limit, offset=customers_offset
        )
        waiting = await db.notice_failures(connection, recall_id)
    return built_from_row(
        RecallView,
        recall,
        recall_id=recall_id,
        notices_complete=recall["notices_done_at"] is not None,
        waiting_customers=[
            built_from_row(WaitingCustomer, row, since=row["created_at"]) for row in waiting
        ],
        affected_lots=[LotSummary.from_row(row) for row in lots],
        customers=_affected_customers(rows),
    )


@router.get(
    "/recalls/{recall_id}/customers.csv",
    tags=["recall"],
    summary="Affected customers and what they received, as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    dependencies=[requires(Role.VIEWER)],
)
async def recall_customers_csv(recall_id: str, request: Request) -> StreamingResponse:
    database = database_of(request)
    async with database.pool.acquire() as connection:
        await _recall_or_404(connection, recall_id)

    async def rows() -> AsyncIterator[bytes]:
        header = csv_lines([reports.CUSTOMER_CSV_COLUMNS])
        page, offset = 5000, 0
        while True:
            async with database.pool.acquire() as connection:
                chunk = await db.recall_customer_lines(
                    connection, recall_id, limit=page, offset=offset
                )
            yield header + csv_lines(reports.customer_csv_row(dict(row)) for row in chunk)
            header = b""
            customers = {row["customer_id"] for row in chunk}
            if len(customers) < page:
                return
            offset += page

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers=attachment(f"recall-{recall_id}-customers.csv"),
    )


@router.post(
    "/recalls/{recall_id}/close",
    tags=["recall"],
    summary="Close a recall",
    dependencies=[requires(Role.RECALL_MANAGER)],
)
async def close_recall(
    recall_id: str, request: Request, body: CloseRequest | None = None
) -> RecallAccepted:
    """Refused (409 `below_target`) while the recall's effectiveness is below its target,
    unless `override_reason` says why it closes anyway: that reason is kept with the actor."""
    actor = actor_of(request)
    override = body.override_reason if body else None

    async def work(unit: UnitOfWork) -> IssuedRecall:
        note = body.note if body else None
        return await _recalls(request).close(
            unit, recall_id, actor=actor, note=note, override=override
        )

    closed = await database_of(request).run(work)
    if override is not None:
        log.warning(
            "recall closed below its target", recall_id=recall_id, actor=actor, reason=override
        )
    return built_from(RecallAccepted, closed, status="closed", drill=False)


# ------------------------------------------------------------------ trace


def _trace_lot(lot_id: UUID, rows: dict[UUID, Record], depth: int, parents: list[UUID]) -> TraceLot:
    row = rows.get(lot_id)
    return TraceLot.model_construct(
        lot_id=lot_id,
        lot_code=row["lot_code"] if row else None,
        sku=row["sku"] if row else None,
        depth=depth,
        linked_to=parents,
        supplier_id=row["supplier_id"] if row else None,
        supplier_name=row["supplier_name"] if row else None,
        purchase_order=row["purchase_order"] if row else None,
        expiry_date=row["expiry_date"] if row else None,
        received_at=row["first_received_at"] if row else None,
        received=bool(row and row["received"]),
    )


def _trace_route(path: str, summary: str, model: type[BaseModel]) -> Callable[[F], F]:
    """A trace read by any viewer, answered with `_json` and documented as `model`."""
    return router.get(
        path,
        tags=["trace"],
        summary=summary,
        response_model=model,
        dependencies=[requires(Role.VIEWER)],
    )


async def _root_lot(connection: Any, lot_id: UUID) -> dict[UUID, Record]:
    return _known_lot(await db.lot_rows(connection, [lot_id]), lot_id)


def _known_lot(rows: dict[UUID, Record], lot_id: UUID) -> dict[UUID, Record]:
    """The rows of a trace's lots, once the traced lot is among them (404 when it is not):
    a trace reads its lot with the others, not in a round trip of its own."""
    if lot_id not in rows:
        raise NotFound("lot_not_found", f"no lot {lot_id}")
    return rows


async def _walk_back(
    connection: Any, lot_id: UUID
) -> tuple[list[Edge], dict[UUID, TraceNode], dict[UUID, Record]]:
    """What the lot was made of, to the roots: the edges, the lots with their depth, their rows."""
    genealogy = await db.genealogy(connection, lot_id, forward=False)
    return genealogy.edges, walk(lot_id, genealogy.edges, forward=False), genealogy.lots


@_trace_route(
    "/trace/lots/{lot_id}/forward", "Lots made from it, shipments, customers", TraceForward
)
async def trace_forward(
    lot_id: UUID,
    request: Request,
    shipments_limit: Annotated[int, Query(ge=0, le=100_000)] = 10_000,
) -> Response:
    async with connection_of(request) as connection:
        genealogy = await db.genealogy(connection, lot_id, forward=True)
        rows = _known_lot(genealogy.lots, lot_id)
        nodes = walk(lot_id, genealogy.edges, forward=True)
        shipped = await db.trace_shipments(connection, nodes, shipments_limit)
    lines = [dict(line) for line in shipped.lines]
    customers = trace_customers(lines)
    trace = TraceForward.model_construct(
        lot=_trace_lot(lot_id, rows, 0, []),
        made_into=[
            _trace_lot(node.lot_id, rows, node.depth, node.parents)
            for node in nodes.values()
            if node.lot_id != lot_id
        ],
        shipments=[],
        customers=[],
        totals=TraceTotals(
            lots=len(nodes),
            customers=len(customers),
            shipment_lines=shipped.all_lines,
            shipments_truncated=len(lines) >= shipments_limit > 0,
        ),
    )
    return _json_with_shipments(trace, lines, customers)


@_trace_route(
    "/trace/lots/{lot_id}/backward", "Supplier, purchase order, inputs to the root", TraceBackward
)
async def trace_backward(lot_id: UUID, request: Request) -> Response:
    async with connection_of(request) as connection:
        edges, nodes, rows = await _walk_back(connection, lot_id)
        _known_lot(rows, lot_id)
        receipts = await db.receipts_of_lots(connection, nodes)
    consumed = {(edge.lot_id, edge.input_lot_id): edge for edge in edges}
    inputs = []
    for node in nodes.values():
        if node.lot_id == lot_id:
            continue
        lot = _trace_lot(node.lot_id, rows, node.depth, node.parents)
        inputs.append(
            TraceInput.model_construct(
                **dict(lot),
                consumed=[
                    Consumed.model_construct(
                        into_lot_id=parent,
                        quantity=consumed[(parent, node.lot_id)].quantity,
                        uom=consumed[(parent, node.lot_id)].uom,
                    )
                    for parent in node.parents
                    if (parent, node.lot_id) in consumed
                ],
            )
        )
    receipts_by_lot: dict[str, list[TraceReceipt]] = defaultdict(list)
    for receipt in receipts:
        receipts_by_lot[str(receipt["lot_id"])].append(TraceReceipt.from_row(receipt))
    with_inputs = {edge.lot_id for edge in edges}
    trace = TraceBackward.model_construct(
        lot=_trace_lot(lot_id, rows, 0, []),
        inputs=inputs,
        roots=[node for node in nodes if node not in with_inputs],
        receipts=dict(receipts_by_lot),
    )
    return _json(trace)


@_trace_route("/trace/orders/{order_id}", "Lots shipped in an order and their origin", TraceOrder)
async def trace_order(order_id: str, request: Request) -> Response:
    async with connection_of(request) as connection:
        lines = await db.order_lines(connection, order_id)
        if not lines:
            raise NotFound("order_not_found", f"no shipment of order {order_id} is known")
        traces = {}
        for lot_id in {line["lot_id"] for line in lines}:
            _, nodes, rows = await _walk_back(connection, lot_id)
            traces[str(lot_id)] = [
                _trace_lot(node.lot_id, rows, node.depth, node.parents) for node in nodes.values()
            ]
    trace = TraceOrder.model_construct(
        order_id=order_id,
        shipments=[OrderShipmentLine.from_row(line) for line in lines],
        lots=traces,
    )
    return _json(trace)


@_trace_route(
    "/trace/lots/{lot_id}/movements",
    "Moves between locations and returns to vendor, with who and why",
    LotMovements,
)
async def lot_movements(lot_id: UUID, request: Request) -> Response:
    async with connection_of(request) as connection:
        await _root_lot(connection, lot_id)
        rows = await db.movements_of_lot(connection, lot_id)
    movements = [built_from_row(LotMovement, row) for row in rows]
    return _json(LotMovements(lot_id=lot_id, movements=movements))


def _json_with_shipments(
    trace: TraceForward, lines: list[dict[str, Any]], customers: list[dict[str, Any]]
) -> Response:
    """The trace with its shipment lines and customers spliced in, encoded as plain values
    by pydantic's own encoder: a model per line was most of a forward trace's time, and
    PostgreSQL writing the JSON most of what was left. The values are what `TraceShipment`
    and `TraceCustomer` declare, in their order (tests/integration/test_recall_trace_encoding.py
    proves the bytes equal). `trace` has neither; the first `"shipments":[],"customers":[]`
    is its own, as no JSON string holds an unescaped quote."""
    head, tail = trace.model_dump_json().split('"shipments":[],"customers":[]', 1)
    body = b"".join(
        (
            head.encode(),
            b'"shipments":',
            to_json(lines),
            b',"customers":',
            to_json(customers),
            tail.encode(),
        )
    )
    return Response(body, media_type="application/json")


def _json(model: BaseModel) -> Response:
    """Serialised by pydantic at once: the model was built from our own, already valid rows."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.get(
    "/trace/lots/{lot_id}/genealogy.mmd",
    tags=["trace"],
    summary="The lot's genealogy as a Mermaid flowchart",
    # Not PlainTextResponse: FastAPI would document the JSON errors as text/plain too.
    response_class=Response,
    responses={
        200: {
            "description": "A Mermaid flowchart.",
            "content": {MERMAID_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    },
    dependencies=[requires(Role.VIEWER)],
)
async def genealogy(lot_id: UUID, request: Request) -> PlainTextResponse:
    async with connection_of(request) as connection:
        await _root_lot(connection, lot_id)
        backward = await db.genealogy_edges(connection, [lot_id], forward=False)
        edges: list[Edge] = backward + await db.genealogy_edges(connection, [lot_id], forward=True)
        lot_ids = {lot_id} | {e.lot_id for e in edges} | {e.input_lot_id for e in edges}
        rows = await db.lot_rows(connection, lot_ids)
        counts = {
            row["lot_id"]: int(row["customers"])
            for row in await db.shipment_counts(connection, lot_ids)
        }
    chart = mermaid_genealogy(
        {key: dict(value) for key, value in rows.items()}, edges, highlight=lot_id, customers=counts
    )
    return PlainTextResponse(chart, media_type=MERMAID_MEDIA_TYPE)


# ------------------------------------------------------------------ reports


def _blank_as_none(value: Any) -> Any:
    # The contract's URL template sends unused filters as empty values (`sku=&lot_code=`).
    return None if isinstance(value, str) and not value.strip() else value


ReportFormat = Literal["csv", "xlsx"]
OptionalDate = Annotated[
    Rfc3339Date | None,
    BeforeValidator(_blank_as_none),
    # Documented as sent: a date, or nothing (blank).
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "pattern": r"^\s*$"}]}
    ),
]
OptionalFilter = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None,
    BeforeValidator(_blank_as_none),
]


@router.get(
    "/reports/fsma204",
    tags=["reports"],
    summary="FDA FSMA 204 electronic sortable spreadsheet (CSV or XLSX)",
    response_class=Response,
    responses={
        200: {
            "description": "One row per critical tracking event (per input lot for"
            " transformations), sorted by event date, then traceability lot code. Read and"
            " sent a UTC day of events at a time: CSV as it is read; XLSX once written"
            " (422 report_too_large over 1,048,575 rows).",
            "content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}},
        }
    },
    dependencies=[requires(Role.VIEWER)],
)
async def fsma204_report(
    request: Request,
    event_from: Annotated[
        OptionalDate, Query(alias="from", description="First event date (UTC), inclusive.")
    ] = None,
    event_to: Annotated[
        OptionalDate, Query(alias="to", description="Last event date (UTC), inclusive.")
    ] = None,
    sku: Annotated[
        OptionalFilter,
        Query(description="Events of this SKU, or consuming it as an input."),
    ] = None,
    lot_code: Annotated[
        OptionalFilter,
        Query(description="Events of this lot code, or consuming it."),
    ] = None,
    report_format: Annotated[ReportFormat, Query(alias="format")] = "csv",
) -> Response:
    """The traceability records FDA may ask for within 24 hours (21 CFR 1.1455(c)(3)(ii)):
    receiving, transformation and shipping events (returns to vendor among them) with their
    key data elements."""
    if event_from is not None and event_to is not None and event_from > event_to:
        raise Invalid("invalid_date_range", f"from ({event_from}) is after to ({event_to})")
    database = database_of(request)
    sheet = fsma_sheet(database, ReportFilter(event_from, event_to, sku, lot_code))
    name = f"fsma204_{event_from or 'start'}_{event_to or 'now'}"
    try:
        return await streamed_response(
            sheet, TableFormat(report_format), name, stall_seconds=database.exports.stall_seconds
        )
    except TableTooLarge as error:
        raise Invalid(
            "report_too_large", f"{error}: narrow the date range or use format=csv"
        ) from error


@router.get(
    "/reports/epcis",
    tags=["reports"],
    summary="A lot's events as a GS1 EPCIS 2.0 JSON-LD document",
    response_class=JSONResponse,
    responses={200: {"content": {reports.EPCIS_MEDIA_TYPE: {}}}},
    dependencies=[requires(Role.VIEWER)],
)
async def epcis_report(lot_id: UUID, request: Request) -> JSONResponse:
    """ObjectEvents for its receipts (ADD, receiving), shipments (OBSERVE, shipping), moves
    (OBSERVE, storing) and returns to vendor (OBSERVE, shipping, returned), TransformationEvents
    for its production and for lots made from it."""
    async with database_of(request).snapshot() as connection:
        await _root_lot(connection, lot_id)
        receipts = await db.receipts_touching_lot(connection, lot_id)
        inputs = await db.inputs_of_receipts(connection, [row["receipt_id"] for row in receipts])
        shipments = await db.shipment_lines_of_lot(connection, lot_id)
        movements = await db.movements_of_lot(connection, lot_id)
    document = reports.epcis_document(
        receipts=[dict(row) for row in receipts],
        inputs=[dict(row) for row in inputs],
        shipments=[dict(row) for row in shipments],
        movements=[dict(row) for row in movements],
        created_at=datetime.now(UTC),
    )
    return JSONResponse(document, media_type=reports.EPCIS_MEDIA_TYPE)


ExamplesQuery = Annotated[
    int,
    Query(
        ge=0,
        le=quality.MAX_EXAMPLES,
        description=f"Example lots per finding, at most (a check keeps {quality.MAX_EXAMPLES}).",
    ),
]
QualityFormat = Annotated[
    TableReportFormat,
    Query(alias="format", description="json; csv: the findings; xlsx: findings, examples."),
]


@router.get(
    "/reports/data-quality",
    tags=["reports"],
    summary="Data-quality monitor: lots whose records would let a trace or recall down",
    response_model=DataQualityReport,
    responses=TABLE_RESPONSES,
    dependencies=[requires(Role.VIEWER)],
)
async def data_quality_report(
    request: Request,
    examples: ExamplesQuery = quality.EXAMPLES,
    report_format: QualityFormat = TableReportFormat.JSON,
) -> Response:
    """Each finding with its count, example lots and how to fix it, as of the latest check
    (`checked_at`; docs/reports.md). The check runs every RECALL_DATA_QUALITY_CHECK_SECONDS
    on one replica and is stored; this serves it (before the first one, it runs one)."""
    report = await database_of(request).run(quality_check.latest)
    return report_response(quality.with_examples(report, examples), report_format, "data-quality")


@router.post(
    "/reports/data-quality/refresh",
    tags=["reports"],
    summary="Run the data-quality check now, and answer its report",
    response_model=DataQualityReport,
    responses=TABLE_RESPONSES,
    dependencies=[requires(Role.RECALL_MANAGER)],
)
async def refresh_data_quality(
    request: Request,
    examples: ExamplesQuery = quality.EXAMPLES,
    report_format: QualityFormat = TableReportFormat.JSON,
) -> Response:
    """Checks every lot now (after the check running, if one is), stores the result that
    `GET /reports/data-quality` and the gauges give, and answers it: to see fixed records
    clear without waiting for the schedule. It reads every lot: not for polling."""
    report = await database_of(request).run(quality_check.checked_now)
    return report_response(quality.with_examples(report, examples), report_format, "data-quality")
