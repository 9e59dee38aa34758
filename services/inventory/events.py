"""The builders of inventory's outgoing events, `lot-allocated`, `lot-status-changed` and
`lot-moved`, from the contract models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.inventory import domain
from services.inventory.domain import LotState, LotStatus
from services.inventory.records import FloorMovement, LockedLot, OrderRevision, ReservedLot
from shared.contracts.events import (
    RETURN_TO_VENDOR,
    Allocation,
    Backorder,
    LotAllocated,
    LotMoved,
    LotStatusChanged,
)
from shared.ids import new_id
from shared.records import built_from


def lot_allocated(
    order: OrderRevision,
    reserved: Iterable[ReservedLot],
    shortfalls: Iterable[domain.Shortfall],
    *,
    at: datetime,
) -> LotAllocated:
    """An order's whole current allocation: its reservations line by line, each line's lots in
    FEFO order (the order they ship in), and what it still lacks, with why."""
    ordered = domain.in_shipping_order(reserved)
    return LotAllocated(
        order_id=order.order_id,
        customer_id=order.customer_id,
        allocations=[Allocation.model_validate(row, from_attributes=True) for row in ordered],
        backordered=[
            Backorder.model_validate(shortfall, from_attributes=True) for shortfall in shortfalls
        ],
        revision=order.revision,
        allocated_at=at,
    )


def lot_status_changed(
    state: LotState, status: LotStatus, *, reason: str, actor: str | None, at: datetime
) -> LotStatusChanged:
    """A lot's new status, with the one announced before it (a lot's first status is never
    announced: `domain.is_announced`)."""
    return LotStatusChanged.model_validate(
        {
            "lot_id": state.lot_id,
            "lot_code": state.lot_code,
            "sku": state.sku,
            "status": status.value,
            "previous_status": state.announced,
            "reason": reason,
            "changed_at": at,
            "actor": actor,
        }
    )


def lot_moved(lot: LockedLot, movement: FloorMovement, *, at: datetime) -> LotMoved:
    """A move or a return to vendor of the lot, under a new movement id; a return to vendor
    names the lot's supplier as where the units went."""
    returned = movement.kind == RETURN_TO_VENDOR
    return built_from(
        LotMoved,
        movement,
        lot,
        movement_id=new_id(),
        supplier_id=lot.supplier_id if returned else None,
        moved_at=at,
    )
