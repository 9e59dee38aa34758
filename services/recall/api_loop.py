"""Recall HTTP routes of the recall loop: customers' responses, the effectiveness check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.recall import db, effectiveness
from services.recall.responses import record_responses
from services.recall.schemas import DrillView, Effectiveness, ResponseRecorded, ResponseRequest
from shared.records import built_from
from shared.runtime.auth import Role, requires
from shared.runtime.database import UnitOfWork
from shared.runtime.http import connection_of, database_of
from shared.runtime.lookup import found
from shared.tables import XLSX_MEDIA_TYPE, attachment

router = APIRouter(tags=["recall"])


@router.post(
    "/recalls/{recall_id}/responses",
    status_code=201,
    summary="Record a customer's response to a recall",
    dependencies=[requires(Role.RECALL_MANAGER)],
)
async def record_response(
    recall_id: str, body: ResponseRequest, request: Request
) -> ResponseRecorded:
    """As a notification service would send it on `recall-responses` (it is published there
    too). The same response_id again changes nothing. 409 when the recall is unknown, the
    customer received none of its lots, or reported units name a lot outside it."""
    response = body.response(recall_id, datetime.now(UTC))

    async def work(unit: UnitOfWork) -> bool:
        new = await record_responses(unit.connection, [response])
        if new:
            unit.emit(response)
        return bool(new)

    recorded = await database_of(request).run(work)
    return built_from(ResponseRecorded, response, recorded=recorded)


@router.get(
    "/recalls/{recall_id}/effectiveness",
    summary="How effective a recall is: customers reached, units recovered, FDA check level",
    response_model=Effectiveness,
    responses={200: {"content": {"text/csv": {}, XLSX_MEDIA_TYPE: {}}}},
    dependencies=[requires(Role.VIEWER)],
)
async def recall_effectiveness(
    recall_id: str,
    request: Request,
    report_format: Annotated[
        Literal["json", "csv", "xlsx"],
        Query(
            alias="format",
            description="json; csv: one row per customer; xlsx: summary,"
            " lots and customers sheets.",
        ),
    ] = "json",
    outstanding_limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
) -> Response:
    async with database_of(request).snapshot() as connection:
        recall = found(await db.get_recall(connection, recall_id), "recall", recall_id)
        check = await effectiveness.read_check(connection, recall)
        # The view names the outstanding customers it lists; an export names everyone.
        named = (
            effectiveness.outstanding_ids(check, outstanding_limit)
            if report_format == "json"
            else [customer for customer, _ in check.customers()]
        )
        names = await db.customer_names(connection, named)
    view = effectiveness.view(check, names, outstanding_limit=outstanding_limit)
    filename = f"recall-{recall_id}-effectiveness.{report_format}"
    headers = attachment(filename)
    if report_format == "csv":
        body = effectiveness.as_csv(check, names).encode("utf-8")
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)
    if report_format == "xlsx":
        workbook = effectiveness.as_xlsx(check, view, names)
        return Response(workbook, media_type=XLSX_MEDIA_TYPE, headers=headers)
    return Response(view.model_dump_json(), media_type="application/json")


@router.get(
    "/drills",
    summary="Recall drills, newest first, with how long each stage took",
    dependencies=[requires(Role.VIEWER)],
)
async def list_drills(
    request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[DrillView]:
    async with connection_of(request) as connection:
        drills = await db.drills(connection, limit)
    return [built_from(DrillView, drill) for drill in drills]
