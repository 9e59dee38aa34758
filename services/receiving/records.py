"""The rows that cross between the receiving handlers and its database: frozen, typed, each
built in one place (from a request here, from a query in `db.py`)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from services.receiving.domain import LotDates, blended_unit_cost, merged_dates
from services.receiving.schemas import ReceiptRequest, ReceiptView
from shared.contracts.events import GoodsReceived, LotInput
from shared.contracts.types import Money, Supplier
from shared.ids import uuid7
from shared.quantities import ZERO
from shared.records import built_from


@dataclass(frozen=True)
class LotRecord:
    """A lot as receiving stores it. The field order is the column order of `lots`."""

    lot_id: UUID
    sku: str
    lot_code: str
    gtin: str | None
    uom: str
    supplier_id: str | None
    supplier_name: str | None
    supplier_lot_code: str | None
    production_date: date | None
    expiry_date: date | None
    best_before_date: date | None
    unit_cost: Decimal | None
    currency: str | None
    received_quantity: Decimal
    consumed_quantity: Decimal
    first_received_at: datetime
    last_received_at: datetime

    @classmethod
    def first_receipt(
        cls, request: ReceiptRequest, lot_code: str, dates: LotDates, received_at: datetime
    ) -> LotRecord:
        """The lot a receipt creates."""
        supplier, cost = request.supplier, request.unit_cost
        return cls(
            lot_id=uuid7(),
            sku=request.sku,
            lot_code=lot_code,
            gtin=request.gtin,
            uom=request.uom,
            supplier_id=supplier.supplier_id if supplier else None,
            supplier_name=supplier.name if supplier else None,
            supplier_lot_code=request.supplier_lot_code,
            production_date=dates.production_date,
            expiry_date=dates.expiry_date,
            best_before_date=dates.best_before_date,
            unit_cost=cost.amount if cost else None,
            currency=cost.currency if cost else None,
            received_quantity=request.quantity,
            consumed_quantity=ZERO,
            first_received_at=received_at,
            last_received_at=received_at,
        )

    def with_receipt(
        self, request: ReceiptRequest, dates: LotDates, received_at: datetime
    ) -> LotRecord:
        """The lot after a re-receipt added to it: dates filled in, cost blended."""
        merged = merged_dates(self.dates, dates)
        cost = request.unit_cost
        unit_cost, currency = blended_unit_cost(
            self.unit_cost,
            self.currency,
            self.received_quantity,
            cost.amount if cost else None,
            cost.currency if cost else None,
            request.quantity,
        )
        return replace(
            self,
            gtin=self.gtin or request.gtin,
            production_date=merged.production_date,
            expiry_date=merged.expiry_date,
            best_before_date=merged.best_before_date,
            unit_cost=unit_cost,
            currency=currency,
            received_quantity=self.received_quantity + request.quantity,
            last_received_at=max(self.last_received_at, received_at),
        )

    @property
    def dates(self) -> LotDates:
        return LotDates(self.production_date, self.expiry_date, self.best_before_date)

    @property
    def supplier(self) -> Supplier | None:
        if not self.supplier_id:
            return None
        return Supplier(supplier_id=self.supplier_id, name=self.supplier_name)

    @property
    def cost(self) -> Money | None:
        if self.unit_cost is None or self.currency is None:
            return None
        return Money(amount=self.unit_cost, currency=self.currency)


LOT_COLUMNS = ", ".join(field.name for field in fields(LotRecord))


@dataclass(frozen=True)
class StoredReceipt:
    """A receipt already made: what a retry with the same id or key is compared with."""

    receipt_id: str
    request_hash: str
    view: ReceiptView


@dataclass(frozen=True)
class ReceiptRecord:
    """One receipt row. The field order is the column order of `receipts`."""

    receipt_id: str
    idempotency_key: str | None
    request_hash: str
    lot_id: UUID
    quantity: Decimal
    uom: str
    location: str
    purchase_order: str | None
    received_at: datetime
    response: ReceiptView

    @classmethod
    def of(
        cls,
        event: GoodsReceived,
        view: ReceiptView,
        *,
        idempotency_key: str | None,
        request_hash: str,
    ) -> ReceiptRecord:
        """The receipt as `goods-received` announced it, with the answer a retry gets back."""
        return built_from(
            cls, event, idempotency_key=idempotency_key, request_hash=request_hash, response=view
        )


@dataclass(frozen=True)
class ReceiptInput:
    """A lot a receipt consumed. The field order is the column order of `receipt_inputs`."""

    input_lot_id: UUID
    quantity: Decimal
    uom: str

    @classmethod
    def of(cls, item: LotInput) -> ReceiptInput:
        return cls(input_lot_id=item.lot_id, quantity=item.quantity, uom=item.uom)


@dataclass(frozen=True)
class ProductRecord:
    sku: str
    description: str | None
    uom: str
    gtins: list[str]
    qc_required: bool
    updated_at: datetime


@dataclass(frozen=True)
class GtinOwner:
    gtin: str
    sku: str


@dataclass(frozen=True)
class ImportedRow:
    """A lot-file row once imported. The field order is the column order of
    `imported_lot_rows`."""

    row_key: str
    receipt_id: str | None  # None: nothing on hand, the lot recorded without a receipt
    lot_id: UUID
