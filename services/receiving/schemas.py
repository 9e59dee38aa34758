"""HTTP request and response bodies of the receiving service."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from shared.contracts.types import (
    Gtin,
    Identifier,
    LotCode,
    Money,
    Quantity,
    ShortText,
    SignedQuantity,
    Sku,
    StrictModel,
    Supplier,
    Uom,
)
from shared.gs1 import Gs1Error, normalize_gtin
from shared.runtime.http import Rfc3339Date, Rfc3339DateTime, with_examples
from shared.runtime.imports import (
    ImportRequest,
    ImportResult,
    KeyedRow,
    RowRejection,
    row_key_field,
)


def _checked_gtin(value: str) -> str:
    try:
        return normalize_gtin(value)
    except Gs1Error as error:
        raise ValueError(str(error)) from error


CheckedGtin = Annotated[Gtin, AfterValidator(_checked_gtin)]
"""A GTIN whose check digit is right, as the 14 digits a scanned (01) carries."""

NonNegativeAmount = Annotated[
    Decimal, Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False)
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class InputRef(StrictModel):
    """An input lot, by id or by lot code and SKU."""

    lot_id: UUID | None = None
    lot_code: LotCode | None = None
    sku: Sku | None = None
    quantity: Quantity
    uom: Uom | None = None

    @model_validator(mode="after")
    def _identified(self) -> InputRef:
        if self.lot_id is None and not (self.lot_code and self.sku):
            raise ValueError("an input needs lot_id, or lot_code and sku")
        return self


class ReceiptRequest(StrictModel):
    model_config = with_examples(
        {
            "sku": "OJ-1L",
            "quantity": "120",
            "supplier": {"supplier_id": "GROVE", "name": "Grove Farms"},
            "supplier_lot_code": "GF-7781",
            "purchase_order": "PO-5531",
            "expiry_date": "2027-03-31",
        }
    )

    receipt_id: Identifier | None = None
    sku: Sku
    gtin: CheckedGtin | None = None
    quantity: Quantity
    uom: Uom = "EA"
    location: Identifier | None = None
    supplier: Supplier | None = None
    supplier_lot_code: LotCode | None = None
    lot_code: LotCode | None = None
    purchase_order: Identifier | None = None
    production_date: Rfc3339Date | None = None
    expiry_date: Rfc3339Date | None = None
    best_before_date: Rfc3339Date | None = None
    unit_cost: Money | None = None
    received_at: Rfc3339DateTime | None = Field(
        default=None, description="When the goods arrived; now when omitted."
    )
    inputs: list[InputRef] = Field(default_factory=list, max_length=1000)


class ReceiptView(StrictModel):
    """A receipt and the lot it created or added to."""

    receipt_id: str
    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None = None
    quantity: Quantity
    uom: str
    location: str
    received_at: datetime
    supplier: Supplier | None = None
    supplier_lot_code: str | None = None
    purchase_order: str | None = None
    production_date: date | None = None
    expiry_date: date | None = None
    best_before_date: date | None = None
    unit_cost: Money | None = None
    inputs: list[dict[str, str]] = Field(default_factory=list)
    qc_required: bool = Field(
        default=False,
        description="The lot waits in quarantine for a QC release before it can be allocated.",
    )
    lot_received_quantity: SignedQuantity
    new_lot: bool


class LotView(StrictModel):
    lot_id: UUID
    lot_code: str
    sku: str
    gtin: str | None = None
    uom: str
    supplier: Supplier | None = None
    supplier_lot_code: str | None = None
    production_date: date | None = None
    expiry_date: date | None = None
    best_before_date: date | None = None
    unit_cost: Money | None = None
    received_quantity: SignedQuantity
    consumed_quantity: SignedQuantity
    first_received_at: datetime
    last_received_at: datetime


class ScanReceiptRequest(StrictModel):
    """A receipt from a scanned GS1 label: GTIN, lot, dates and count come from the barcode."""

    model_config = with_examples(
        {
            "barcode": "]C10109501101530003172703311510D9T\u001d3712",
            "supplier": {"supplier_id": "GROVE"},
            "purchase_order": "PO-5531",
        }
    )

    barcode: str = Field(min_length=1, max_length=500)
    receipt_id: Identifier | None = None
    sku: Sku | None = Field(
        default=None, description="Else the product whose GTIN is scanned, else the GTIN itself."
    )
    quantity: Quantity | None = Field(default=None, description="Else the count (37) scanned.")
    uom: Uom | None = None
    location: Identifier | None = None
    supplier: Supplier | None = None
    purchase_order: Identifier | None = None
    unit_cost: Money | None = None


class ProductRequest(StrictModel):
    description: ShortText | None = None
    uom: Uom = "EA"
    gtins: list[CheckedGtin] = Field(default_factory=list, max_length=100)
    qc_required: StrictBool = Field(
        default=False,
        description="Lots of this product are received quarantined (`goods-received`"
        " `qc_required: true`) and never allocated before inventory's QC release.",
    )


class ProductView(StrictModel):
    sku: str
    description: str | None = None
    uom: str
    gtins: list[str]
    qc_required: bool = Field(
        default=False, description="Its lots are received quarantined until a QC release."
    )
    updated_at: datetime


# ------------------------------------------------------------------ onboarding import


class LotImportRow(KeyedRow):
    """One row of a lots file: stock of one lot at one location, with the lot's original
    attributes. The field names are the file's column names (docs/onboarding.md)."""

    row_key: Identifier | None = row_key_field("sku/lot_code/location")
    sku: Sku
    lot_code: LotCode
    location: Identifier
    on_hand: NonNegativeAmount = Field(
        description="What is on the shelf at this location now; 0 records a lot sold out"
        " before the move: no receipt, no stock, and a lot new to the platform is announced on"
        " `lot-registered`, so that its shipments and returns can name it."
    )
    received_at: Rfc3339DateTime = Field(
        description="When the lot was received, kept as is; a moment after now refuses the row."
    )
    uom: Uom = "EA"
    gtin: CheckedGtin | None = None
    supplier_id: Identifier | None = None
    supplier_name: ShortText | None = None
    supplier_lot_code: LotCode | None = None
    purchase_order: Identifier | None = None
    production_date: Rfc3339Date | None = None
    expiry_date: Rfc3339Date | None = None
    best_before_date: Rfc3339Date | None = None
    unit_cost: NonNegativeAmount | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _keyed_and_costed(self) -> LotImportRow:
        self.key_by_default(f"{self.sku}/{self.lot_code}/{self.location}")
        if (self.unit_cost is None) != (self.currency is None):
            raise ValueError("unit_cost and currency go together: give both or neither")
        if self.supplier_name and not self.supplier_id:
            raise ValueError("supplier_name needs supplier_id")
        return self


class LotImportRequest(ImportRequest[LotImportRow]):
    pass


class ImportedLotRow(StrictModel):
    row_key: str
    receipt_id: str | None = Field(description="None when the row had nothing on hand.")
    lot_id: UUID
    lot_code: str
    new_lot: bool


class LotImportResult(ImportResult[ImportedLotRow]):
    imported: list[ImportedLotRow] = Field(description="Rows received now, one receipt each.")
    rejected: list[RowRejection] = Field(
        description="Rows a rule refused; nothing of them is kept."
    )


class LotReference(StrictModel):
    sku: Sku
    lot_code: LotCode


class LotLookupRequest(StrictModel):
    lots: list[LotReference] = Field(min_length=1, max_length=10_000)


class FoundLot(LotReference):
    lot_id: UUID
    uom: str
