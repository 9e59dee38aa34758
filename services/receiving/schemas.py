"""HTTP request and response bodies of the receiving service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
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
    Supplier,
    Uom,
)
from shared.gs1 import Gs1Error, normalize_gtin
from shared.runtime.http import Rfc3339Date, Rfc3339DateTime


def _checked_gtin(value: str) -> str:
    try:
        return normalize_gtin(value)
    except Gs1Error as error:
        raise ValueError(str(error)) from error


CheckedGtin = Annotated[Gtin, AfterValidator(_checked_gtin)]
"""A GTIN whose check digit is right, as the 14 digits a scanned (01) carries."""


class InputRef(BaseModel):
    """An input lot, by id or by lot code and SKU."""

    model_config = ConfigDict(extra="forbid")

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


def _strict_with_example(example: JsonValue) -> ConfigDict:
    """A request body that refuses unknown fields, with one example for the API docs."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


class ReceiptRequest(BaseModel):
    model_config = _strict_with_example(
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


class ReceiptView(BaseModel):
    """A receipt and the lot it created or added to."""

    model_config = ConfigDict(extra="forbid")

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


class LotView(BaseModel):
    model_config = ConfigDict(extra="forbid")

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


class ScanReceiptRequest(BaseModel):
    """A receipt from a scanned GS1 label: GTIN, lot, dates and count come from the barcode."""

    model_config = _strict_with_example(
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


class ProductRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: ShortText | None = None
    uom: Uom = "EA"
    gtins: list[CheckedGtin] = Field(default_factory=list, max_length=100)
    qc_required: StrictBool = Field(
        default=False,
        description="Lots of this product are received quarantined (`goods-received`"
        " `qc_required: true`) and never allocated before inventory's QC release.",
    )


class ProductView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    description: str | None = None
    uom: str
    gtins: list[str]
    qc_required: bool = Field(
        default=False, description="Its lots are received quarantined until a QC release."
    )
    updated_at: datetime
