"""Onboarding import of lots: each row of a lots file becomes a receipt made when the lot was
really received, at its location, so the lot reaches inventory and recall through the normal
`goods-received`. A row with nothing on hand that creates its lot (a lot sold out before the
move) makes no receipt: the lot is announced on `lot-registered`, so that inventory and recall
know it all the same. A batch is one transaction: the rows a rule refuses are left out whole,
the others go in, and a row key taken by an earlier import is skipped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.receiving import db
from services.receiving.domain import (
    LotDates,
    ReceivingError,
    check_dates,
    check_same_lot,
)
from services.receiving.handlers import request_fingerprint
from services.receiving.outgoing import ReceiptPlace, goods_received, lot_registered
from services.receiving.records import ImportedRow, LotRecord, ReceiptRecord
from services.receiving.schemas import (
    ImportedLotRow,
    LotImportResult,
    LotImportRow,
    ReceiptRequest,
)
from services.receiving.views import receipt_view
from shared.contracts.events import GoodsReceived, LotRegistered
from shared.contracts.types import Money, Supplier
from shared.errors import ErrorKind
from shared.ids import new_id
from shared.runtime.database import UnitOfWork
from shared.runtime.imports import RowRejection, not_happened_yet

# The receipt fields a lots-file row gives under the same name and type.
_SAME_FIELDS = tuple(
    sorted(set(ReceiptRequest.model_fields) & set(LotImportRow.model_fields) - {"unit_cost"})
)


def receipt_request(row: LotImportRow) -> ReceiptRequest:
    """The receipt a row stands for: its stock on hand, received at its date and place."""
    # The row was validated with the receipt's own field types, and a receipt has no
    # model-level rule: constructed, not validated a second time.
    return ReceiptRequest.model_construct(
        **{name: getattr(row, name) for name in _SAME_FIELDS},
        quantity=row.on_hand,
        supplier=Supplier(supplier_id=row.supplier_id, name=row.supplier_name)
        if row.supplier_id
        else None,
        unit_cost=Money(amount=row.unit_cost, currency=row.currency)
        if row.unit_cost is not None and row.currency
        else None,
        inputs=[],
    )


@dataclass(frozen=True)
class ImportedReceipt:
    event: GoodsReceived
    record: ReceiptRecord


@dataclass
class ImportPlan:
    """The batch's lots as its rows, in file order, receive into them."""

    stored: dict[tuple[str, str], LotRecord]
    now: datetime
    lots: dict[tuple[str, str], LotRecord] = field(default_factory=dict)
    imported: list[ImportedLotRow] = field(default_factory=list)
    receipts: list[ImportedReceipt] = field(default_factory=list)
    registrations: list[LotRegistered] = field(default_factory=list)
    rejected: list[RowRejection] = field(default_factory=list)

    def take(self, row: LotImportRow) -> None:
        try:
            self._receive(row)
        except ReceivingError as error:
            self.rejected.append(
                RowRejection(row_key=row.key, column=error.field, reason=error.message)
            )

    def _receive(self, row: LotImportRow) -> None:
        request = receipt_request(row)
        dates = LotDates(row.production_date, row.expiry_date, row.best_before_date)
        check_dates(dates)
        if late := not_happened_yet(row.received_at, self.now, "received_at"):
            raise ReceivingError("in_the_future", late, field="received_at")
        code = (row.sku, row.lot_code)
        before = self.lots.get(code) or self.stored.get(code)
        if before is None:
            lot = LotRecord.first_receipt(request, row.lot_code, dates, row.received_at)
        else:
            check_same_lot(before, sku=row.sku, uom=row.uom, dates=dates)
            # A lot sold out before the move is recorded, so its shipments can name it.
            received = (
                before if not row.on_hand else before.with_receipt(request, dates, row.received_at)
            )
            lot = replace(
                received, first_received_at=min(before.first_received_at, row.received_at)
            )
        self.lots[code] = lot
        receipt = _receipt(row, request, lot, new_lot=before is None) if row.on_hand else None
        if receipt is not None:
            self.receipts.append(receipt)
        elif before is None:
            self.registrations.append(_registration(row, request, lot))
        self.imported.append(
            ImportedLotRow(
                row_key=row.key,
                receipt_id=receipt.record.receipt_id if receipt else None,
                lot_id=lot.lot_id,
                lot_code=lot.lot_code,
                new_lot=before is None,
            )
        )

    @property
    def created(self) -> list[LotRecord]:
        return [lot for code, lot in self.lots.items() if code not in self.stored]

    @property
    def changed(self) -> list[LotRecord]:
        return [lot for code, lot in self.lots.items() if code in self.stored]


def _receipt(
    row: LotImportRow, request: ReceiptRequest, lot: LotRecord, *, new_lot: bool
) -> ImportedReceipt:
    # Stock on the shelf at the move has passed the company's own QC: never quarantined.
    place = ReceiptPlace(receipt_id=new_id(), location=row.location, received_at=row.received_at)
    event = goods_received(request, lot, [], place)
    view = receipt_view(event, lot, new_lot=new_lot)
    record = ReceiptRecord.of(
        event, view, idempotency_key=None, request_hash=request_fingerprint(request)
    )
    return ImportedReceipt(event, record)


def _registration(row: LotImportRow, request: ReceiptRequest, lot: LotRecord) -> LotRegistered:
    """A lot created with nothing on hand: no receipt, but inventory and recall must know it."""
    place = ReceiptPlace(receipt_id=new_id(), location=row.location, received_at=row.received_at)
    return lot_registered(request, lot, place)


async def import_lots(
    unit: UnitOfWork, rows: Sequence[LotImportRow], *, now: datetime, dry_run: bool = False
) -> LotImportResult:
    batch = await db.LOT_IMPORTS.open(unit.connection, rows)
    codes = sorted({(row.sku, row.lot_code) for row in batch.fresh})
    stored = await db.lock_lots_by_codes(unit.connection, codes)
    plan = ImportPlan({(lot.sku, lot.lot_code): lot for lot in stored}, now)
    for row in batch.fresh:
        plan.take(row)
    if not dry_run:
        await _write(unit, plan, now=now)
    return LotImportResult(
        imported=plan.imported,
        already_imported=batch.already_imported,
        rejected=plan.rejected,
    )


async def _write(unit: UnitOfWork, plan: ImportPlan, *, now: datetime) -> None:
    connection = unit.connection
    if await db.insert_lots(connection, plan.created) != len(plan.created):
        raise ReceivingError(
            "concurrent_receipt",
            "a lot of this batch was received meanwhile: run the import again",
            kind=ErrorKind.CONFLICT,
        )
    await db.update_lots(connection, plan.changed)
    await db.insert_receipts(connection, [receipt.record for receipt in plan.receipts])
    await db.record_imported_rows(
        connection,
        [ImportedRow(row.row_key, row.receipt_id, row.lot_id) for row in plan.imported],
    )
    for registration in plan.registrations:
        unit.emit(registration, time=now)
    for receipt in plan.receipts:
        unit.emit(receipt.event, time=now)
