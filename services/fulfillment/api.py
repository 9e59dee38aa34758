"""Fulfillment HTTP routes: ship what is allocated, by lot; look up an order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response

from services.fulfillment import db
from services.fulfillment.domain import ScannedLot
from services.fulfillment.handlers import Fulfillment, ShipmentResult
from services.fulfillment.schemas import (
    AllocationView,
    BackorderView,
    OrderLineView,
    OrderView,
    ShipmentRequest,
    ShipmentView,
    ShippedLine,
)
from shared.errors import Invalid, NotFound
from shared.gs1 import Gs1Error, parse_gs1
from shared.runtime.actors import actor_of
from shared.runtime.auth import Role, requires
from shared.runtime.database import UnitOfWork
from shared.runtime.http import database_of

router = APIRouter(tags=["fulfillment"])


def _scanned(scans: list[str]) -> list[ScannedLot]:
    lots = []
    for barcode in scans:
        try:
            scan = parse_gs1(barcode)
        except Gs1Error as error:
            raise Invalid("invalid_barcode", f"{error.element}: {error}") from error
        if not scan.lot_code:
            raise Invalid("invalid_barcode", f"scan {barcode!r} names no lot (10)")
        lots.append(ScannedLot(lot_code=scan.lot_code, gtin=scan.gtin))
    return lots


def _view(result: ShipmentResult) -> ShipmentView:
    return ShipmentView(
        shipment_id=result.shipment_id,
        order_id=result.order_id,
        customer=result.customer.model_dump(mode="json", exclude_none=True),
        shipped_at=result.shipped_at,
        shipped_by=result.shipped_by,
        lines=[ShippedLine(**vars(line)) for line in result.lines],
    )


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
    result: ShipmentResult | None = None

    async def work(unit: UnitOfWork) -> None:
        nonlocal result
        result = await fulfillment.ship(
            unit,
            order_id=body.order_id,
            shipment_id=body.shipment_id,
            scanned=scanned,
            requested=requested,
            actor=actor,
        )

    await database_of(request).run(work)
    assert result is not None
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _view(result)


@router.get(
    "/orders/{order_id}",
    summary="An order: lines, allocation, backorders, shipments",
    dependencies=[requires(Role.VIEWER)],
)
async def get_order(order_id: str, request: Request) -> OrderView:
    async with database_of(request).pool.acquire() as connection:
        order = await db.get_order(connection, order_id)
        if order is None:
            raise NotFound("order_not_found", f"no order {order_id}")
        lines = (await db.lines_of(connection, [order_id]))[order_id]
        allocations = (await db.allocations_of(connection, [order_id]))[order_id]
        blocked = await db.blocked_among(connection, {a.lot_id for a in allocations})
        backorders = await db.backorders_of(connection, order_id)
        shipments = await db.shipments_of(connection, order_id)
        shipped_lines = await db.shipment_lines(connection, [s["shipment_id"] for s in shipments])
    per_shipment: dict[str, list[Any]] = {}
    for row in shipped_lines:
        per_shipment.setdefault(row["shipment_id"], []).append(
            ShippedLine(**dict(row_without(row, "shipment_id")))
        )
    customer = order["customer"]
    return OrderView(
        order_id=order_id,
        status=order["status"]
        if order["customer_id"] or order["status"] != "open"
        else "awaiting_order",
        customer=customer,
        placed_at=order["placed_at"],
        allocation_revision=order["allocation_revision"],
        lines=[OrderLineView(**vars(line)) for line in lines],
        allocations=[AllocationView(**vars(a), blocked=blocked.get(a.lot_id)) for a in allocations],
        backordered=[BackorderView(**dict(row)) for row in backorders],
        shipments=[
            ShipmentView(
                shipment_id=s["shipment_id"],
                order_id=order_id,
                customer=customer or {},
                shipped_at=s["shipped_at"],
                shipped_by=s["shipped_by"],
                lines=per_shipment.get(s["shipment_id"], []),
            )
            for s in shipments
        ],
    )


def row_without(row: Any, *names: str) -> dict[str, Any]:
    return {key: value for key, value in dict(row).items() if key not in names}
