"""Inventory HTTP routes: stock per lot, holds, counts, history, valuation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from services.inventory import db, domain, report_routes
from services.inventory.handlers import Inventory
from services.inventory.records import LockedLot
from services.inventory.schemas import (
    AdjustmentRequest,
    AdjustmentView,
    HistoryEntry,
    HoldRequest,
    LocationStock,
    LotView,
    MoveRequest,
    MoveView,
    OrderLineView,
    OrderView,
    ReleaseRequest,
    ReservationView,
    ReturnAccepted,
    ReturnedLot,
    ReturnRequest,
    ReturnToVendorRequest,
    SkuValuation,
    ValuationLine,
)
from shared.contracts.events import GoodsReturned
from shared.contracts.types import Money
from shared.gs1 import case_labels
from shared.records import built_from, built_from_row
from shared.runtime.actors import actor_of
from shared.runtime.auth import Role, requires
from shared.runtime.database import Record, UnitOfWork, rows_as
from shared.runtime.http import connection_of, database_of
from shared.runtime.lookup import found

router = APIRouter(tags=["inventory"])


def _inventory(request: Request) -> Inventory:
    inventory: Inventory = request.app.state.inventory
    return inventory


def lot_view(row: Record, inventory: Inventory) -> LotView:
    """The lot's totals; its status and availability count the locations not held only."""
    locations = [
        LocationStock(**place, held=not domain.is_pickable(place["location"]))
        for place in row["locations"]
    ]
    main = max(locations, key=lambda place: place.on_hand, default=None)
    pickable = [place for place in locations if not place.held]
    return LotView(
        **{key: row[key] for key in LotView.model_fields if key not in _DERIVED},
        location=main.location if main else None,
        locations=locations,
        available=sum((place.available for place in pickable), Decimal(0)),
        status=domain.lot_status(
            stored=row["blocks"],
            expiry_date=row["expiry_date"],
            today=inventory.today(),
            on_hand=sum((place.on_hand for place in pickable), Decimal(0)),
        ),
        unit_cost=_unit_cost(row),
    )


# The view's fields computed here rather than read from the row.
_DERIVED = frozenset({"status", "unit_cost", "location", "locations", "available"})


def _unit_cost(row: Record) -> Money | None:
    """A lot's cost as stored, when both its amount and currency are known."""
    if row["unit_cost"] is None or not row["currency"]:
        return None
    return Money(amount=row["unit_cost"], currency=row["currency"])


async def _lot_or_404(request: Request, lot_id: UUID) -> LotView:
    async with connection_of(request) as connection:
        row = found(await db.get_lot(connection, lot_id), "lot", lot_id)
    return lot_view(row, _inventory(request))


@router.get(
    "/lots/expiring",
    summary="Lots with stock that expire within the given days",
    dependencies=[requires(Role.VIEWER)],
)
async def expiring(
    request: Request, within_days: Annotated[int, Query(ge=0, le=3650)] = 30
) -> list[LotView]:
    inventory = _inventory(request)
    until = inventory.today() + timedelta(days=within_days)
    async with connection_of(request) as connection:
        rows = await db.expiring(connection, until, limit=5000)
    return [lot_view(row, inventory) for row in rows]


@router.get(
    "/lots/{lot_id}",
    summary="Stock of one lot: on hand, reserved, available, status",
    dependencies=[requires(Role.VIEWER)],
)
async def get_lot(lot_id: UUID, request: Request) -> LotView:
    return await _lot_or_404(request, lot_id)


@router.get(
    "/lots/{lot_id}/history",
    summary="Every change to the lot, with its cause",
    dependencies=[requires(Role.VIEWER)],
)
async def lot_history(
    lot_id: UUID, request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[HistoryEntry]:
    await _lot_or_404(request, lot_id)
    async with connection_of(request) as connection:
        rows = await db.lot_history(connection, lot_id, limit)
    return rows_as(rows, HistoryEntry)


@router.get("/stock", summary="Per-lot stock in FEFO order", dependencies=[requires(Role.VIEWER)])
async def stock(
    request: Request,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[LotView]:
    inventory = _inventory(request)
    async with connection_of(request) as connection:
        rows = await db.stock(connection, sku, limit)
    return [lot_view(row, inventory) for row in rows]


LotCommand = Callable[[UnitOfWork, str], Awaitable[None]]
"""A change to a lot, made in a unit of work as the actor named."""


async def _changed_lot(request: Request, lot_id: UUID, command: LotCommand) -> LotView:
    """Runs `command` as the caller, then answers the lot as it is now."""
    actor = actor_of(request)

    async def work(unit: UnitOfWork) -> None:
        await command(unit, actor)

    await database_of(request).run(work)
    return await _lot_or_404(request, lot_id)


@router.post(
    "/lots/{lot_id}/hold",
    summary="Quality hold: the lot is quarantined",
    dependencies=[requires(Role.INVENTORY_CONTROLLER)],
)
async def hold(lot_id: UUID, body: HoldRequest, request: Request) -> LotView:
    inventory = _inventory(request)
    return await _changed_lot(
        request,
        lot_id,
        lambda unit, actor: inventory.hold(unit, lot_id, reason=body.reason, actor=actor),
    )


@router.post(
    "/lots/{lot_id}/release",
    summary="Release a quality hold, or give a lot its QC result",
    dependencies=[requires(Role.INVENTORY_CONTROLLER)],
)
async def release(lot_id: UUID, request: Request, body: ReleaseRequest | None = None) -> LotView:
    inventory = _inventory(request)
    return await _changed_lot(
        request,
        lot_id,
        lambda unit, actor: inventory.release_hold(
            unit,
            lot_id,
            reason=body.reason if body else None,
            actor=actor,
            qc_result=body.qc_result if body else None,
        ),
    )


@router.post(
    "/adjustments",
    status_code=201,
    summary="Cycle count of a lot at a location",
    dependencies=[requires(Role.INVENTORY_CONTROLLER)],
)
async def adjust(body: AdjustmentRequest, request: Request) -> AdjustmentView:
    actor = actor_of(request)

    async def work(unit: UnitOfWork) -> Decimal:
        return await _inventory(request).adjust(
            unit,
            body.lot_id,
            location=body.location,
            delta=body.quantity,
            counted=body.counted,
            reason=body.reason,
            actor=actor,
        )

    change = await database_of(request).run(work)
    return AdjustmentView(
        lot_id=body.lot_id, change=change, lot=await _lot_or_404(request, body.lot_id)
    )


@router.get(
    "/orders/{order_id}",
    summary="An order's lines, reservations and backorders",
    dependencies=[requires(Role.VIEWER)],
)
async def get_order(order_id: str, request: Request) -> OrderView:
    async with connection_of(request) as connection:
        order = found(await db.get_order(connection, order_id), "order", order_id)
        lines = await db.line_states(connection, [order_id])
        reservations = await db.reservations_with_lots(connection, [order_id])
    return OrderView(
        order_id=order_id,
        customer_id=order["customer_id"],
        status=order["status"],
        revision=order["revision"],
        lines=[
            built_from(
                OrderLineView,
                line,
                backorder_reason=line.backorder_reason if line.backordered > 0 else None,
            )
            for line in lines
        ],
        reservations=[
            ReservationView.model_validate(row, from_attributes=True)
            for row in domain.in_shipping_order(reservations)
        ],
    )


@router.get(
    "/valuation",
    summary="Inventory value at actual lot cost, per SKU and lot",
    dependencies=[requires(Role.VIEWER)],
)
async def valuation(
    request: Request, sku: Annotated[str | None, Query(max_length=64)] = None
) -> list[SkuValuation]:
    async with connection_of(request) as connection:
        rows = await db.valuation(connection, sku)
    per_sku: dict[str, list[Record]] = defaultdict(list)
    for row in rows:
        per_sku[row["sku"]].append(row)
    result = []
    for name, lots in per_sku.items():
        currencies = {row["currency"] for row in lots if row["currency"]}
        result.append(
            SkuValuation(
                sku=name,
                currency=currencies.pop() if len(currencies) == 1 else None,
                on_hand=sum((row["on_hand"] for row in lots), Decimal(0)),
                value=sum((row["value"] for row in lots if row["value"] is not None), Decimal(0)),
                uncosted_quantity=sum(
                    (row["on_hand"] for row in lots if row["unit_cost"] is None), Decimal(0)
                ),
                lots=[
                    built_from_row(ValuationLine, row, unit_cost=_unit_cost(row)) for row in lots
                ],
            )
        )
    return result


def _scans(barcodes: list[str]) -> list[domain.Scan]:
    """Each scanned GS1 string as the lot code and GTIN it carries."""
    return [(scan.lot_code, scan.gtin) for scan in case_labels(barcodes)]


@router.post(
    "/moves",
    status_code=201,
    summary="Move units of a lot between locations, checked against the scanned cases",
    dependencies=[requires(Role.INVENTORY_CONTROLLER)],
)
async def move(body: MoveRequest, request: Request) -> MoveView:
    floor = _inventory(request).floor
    scanned = _scans(body.scans) if body.scans is not None else None
    lot = await _changed_lot(
        request,
        body.lot_id,
        lambda unit, actor: floor.move(
            unit,
            body.lot_id,
            source=body.from_location,
            target=body.to_location,
            quantity=body.quantity,
            scanned=scanned,
            reason=body.reason,
            actor=actor,
        ),
    )
    return built_from(MoveView, body, lot=lot)


@router.post(
    "/lots/{lot_id}/return-to-vendor",
    summary="Return units of a lot to its supplier under the supplier's RMA",
    dependencies=[requires(Role.INVENTORY_CONTROLLER)],
)
async def return_to_vendor(lot_id: UUID, body: ReturnToVendorRequest, request: Request) -> LotView:
    floor = _inventory(request).floor
    return await _changed_lot(
        request,
        lot_id,
        lambda unit, actor: floor.return_to_vendor(
            unit,
            lot_id,
            location=body.location,
            quantity=body.quantity,
            rma=body.rma,
            reason=body.reason,
            actor=actor,
        ),
    )


@router.post(
    "/returns",
    status_code=202,
    summary="A customer return: its units are taken in held for inspection",
    description="Every line must name a known lot (else 404 `lot_not_found`, nothing"
    " recorded). The return goes out as `goods-returned` and is taken into stock from there,"
    " like a return another system publishes.",
    dependencies=[requires(Role.RECEIVER)],
)
async def accept_return(body: ReturnRequest, request: Request) -> ReturnAccepted:
    event = GoodsReturned.model_validate(
        {
            **body.model_dump(exclude={"returned_at"}),
            "returned_at": body.returned_at or datetime.now(UTC),
        }
    )

    async def work(unit: UnitOfWork) -> dict[int, LockedLot]:
        return await _inventory(request).floor.accept_return(unit, event)

    lots = await database_of(request).run(work)
    return ReturnAccepted(
        return_id=event.return_id,
        location=domain.RETURNS_LOCATION,
        lines=[
            built_from(
                ReturnedLot, lots[line.line_no], line_no=line.line_no, quantity=line.quantity
            )
            for line in event.lines
        ],
    )


# The reports' routes as they are (`include_router` would wrap them, and each route declares
# its role itself).
router.routes.extend(report_routes.router.routes)
