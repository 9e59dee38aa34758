"""Fulfillment HTTP routes: ship what is allocated, by lot; look up an order."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request, Response

from services.fulfillment import db, imports
from services.fulfillment.domain import SHIPPABLE_STATUSES, ScannedLot
from services.fulfillment.handlers import Fulfillment, ShipmentResult
from services.fulfillment.schemas import (
    OrderView,
    ShipmentImportRequest,
    ShipmentImportResult,
    ShipmentRequest,
    ShipmentView,
)
from services.fulfillment.views import OrderDetails, order_view, shipment_view
from shared.gs1 import case_labels
from shared.runtime.actors import actor_of
from shared.runtime.auth import Role, requires
from shared.runtime.database import Connection, UnitOfWork
from shared.runtime.http import connection_of, database_of
from shared.runtime.imports import run_import
from shared.runtime.lookup import found

router = APIRouter(tags=["fulfillment"])


def _scanned(scans: list[str]) -> list[ScannedLot]:
    return [
        ScannedLot(lot_code=scan.lot_code, gtin=scan.gtin)
        for scan in case_labels(scans)
        if scan.lot_code
    ]


@router.post(
    "/shipments",
    status_code=201,
    summary="Ship what is allocated to an order",
    description=(
        "Ships the order's allocated, unshipped quantities. With `scans`, only the scanned lots"
        " ship and each must be allocated to the order (a mismatch is 409 naming the lot and"
        " ships nothing; a label of another product, by its GTIN, is 409 `wrong_product`)."
        " A recalled lot is 409 naming it. `lines` ships part of the order."
    ),
    dependencies=[requires(Role.SHIPPER)],
)
async def create_shipment(
    body: ShipmentRequest, request: Request, response: Response
) -> ShipmentView:
    fulfillment: Fulfillment = request.app.state.fulfillment
    scanned = _scanned(body.scans) if body.scans is not None else None
    requested: dict[int, Decimal | None] | None = (
        {line.line_no: line.quantity for line in body.lines} if body.lines is not None else None
    )
    actor = actor_of(request)

    async def work(unit: UnitOfWork) -> ShipmentResult:
        return await fulfillment.ship(
            unit,
            order_id=body.order_id,
            shipment_id=body.shipment_id,
            scanned=scanned,
            requested=requested,
            actor=actor,
        )

    result = await database_of(request).run(work)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return shipment_view(result.shipment)


@router.get(
    "/orders/{order_id}",
    summary="An order: lines, allocation, backorders, shipments",
    dependencies=[requires(Role.VIEWER)],
)
async def get_order(order_id: str, request: Request) -> OrderView:
    async with connection_of(request) as connection:
        details = await _order_details(connection, order_id)
    return order_view(details)


async def _order_details(connection: Connection, order_id: str) -> OrderDetails:
    order = found(await db.get_order(connection, order_id), "order", order_id)
    allocations = (await db.allocations_of(connection, [order_id]))[order_id]
    shipments = await db.shipments_of(connection, order_id)
    return OrderDetails(
        order=order,
        lines=(await db.lines_of(connection, [order_id]))[order_id],
        allocations=allocations,
        blocked=await db.blocked_among(
            connection, {a.lot_id for a in allocations}, shippable=SHIPPABLE_STATUSES
        ),
        backorders=await db.backorders_of(connection, order_id),
        shipments=shipments,
        shipped_lines=await db.shipment_lines(connection, [s.shipment_id for s in shipments]),
    )


@router.post(
    "/imports/shipments",
    summary="Import shipment history at onboarding, an `order-shipped` per row",
    description=(
        "Each row is a quantity of one lot that went to one customer before lottrace, with its"
        " lot's id (`lottrace import shipments` finds it in receiving). Each is announced as"
        " its own `order-shipped` with `imported: true`: traces and recalls count it, inventory"
        " never takes it from stock. Fulfillment's orders are not touched. A row whose"
        " `row_key` an earlier import took is listed in `already_imported` and announced"
        " again never."
    ),
    dependencies=[requires(Role.SHIPPER)],
)
async def import_shipments(body: ShipmentImportRequest, request: Request) -> ShipmentImportResult:
    return await run_import(request, body, imports.import_shipments)
