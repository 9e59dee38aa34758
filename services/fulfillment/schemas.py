"""HTTP request and response bodies of the fulfillment service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID, uuid5

from pydantic import (
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from shared.contracts.types import (
    Address,
    Customer,
    Identifier,
    LotCode,
    Quantity,
    ShortText,
    SignedQuantity,
    Sku,
    StrictModel,
    Uom,
    require_distinct,
)
from shared.runtime.http import Rfc3339DateTime, with_examples
from shared.runtime.imports import (
    ImportRequest,
    ImportResult,
    KeyedRow,
    RowRejection,
    row_key_field,
)


class LineRequest(StrictModel):
    line_no: StrictInt = Field(ge=0)  # not "1", 1.0 or true: the document says integer
    quantity: Quantity | None = Field(default=None, description="All that remains when omitted.")


class ShipmentRequest(StrictModel):
    model_config = with_examples(
        {"order_id": "SO-1001"},
        {"order_id": "SO-1001", "scans": ["]C10109501101530003172612311010D9T"]},
    )

    order_id: Identifier
    shipment_id: Identifier | None = Field(
        default=None, description="Chosen by the caller to make a retried request safe."
    )
    scans: list[str] | None = Field(
        default=None,
        max_length=1000,
        description=(
            "GS1 strings of the cases picked: each must name a lot allocated to the order and,"
            " when it carries a GTIN (01), that lot's product (else 409 `wrong_product`)."
        ),
    )
    lines: list[LineRequest] | None = Field(
        default=None, max_length=1000, description="Ship only these lines (partial shipment)."
    )

    @model_validator(mode="after")
    def _distinct_lines(self) -> ShipmentRequest:
        if self.lines is not None:
            require_distinct((line.line_no for line in self.lines), "a line may appear once")
        return self


class LotLineView(StrictModel):
    """A quantity of one lot for one order line: what an allocation and a shipment share."""

    line_no: int
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    uom: str


class ShippedLine(LotLineView):
    pass


class ShipmentView(StrictModel):
    shipment_id: str
    order_id: str
    customer: dict[str, Any]
    shipped_at: datetime
    shipped_by: str | None = None
    lines: list[ShippedLine]


class OrderLineView(StrictModel):
    line_no: int
    sku: str
    uom: str
    ordered: SignedQuantity
    shipped: SignedQuantity


class AllocationView(LotLineView):
    expiry_date: date | None = None
    gtin: str | None = None
    blocked: str | None = None


class BackorderView(StrictModel):
    line_no: int
    sku: str
    quantity: SignedQuantity
    uom: str
    reason: str


class OrderView(StrictModel):
    order_id: str
    status: str
    customer: dict[str, Any] | None
    placed_at: datetime | None = None
    allocation_revision: int
    lines: list[OrderLineView]
    allocations: list[AllocationView]
    backordered: list[BackorderView]
    shipments: list[ShipmentView]


# ------------------------------------------------------------------ onboarding import

# Shipment ids made for imported rows that name none: the same row key, the same id.
IMPORTED_SHIPMENTS = UUID("6f1d2b0e-9c43-4f7a-8d6b-2a51c0e3b7d4")


class ShipmentHistoryRow(KeyedRow):
    """One row of a shipments file: a quantity of one lot that went to one customer before
    lottrace. The field names are the file's column names (docs/onboarding.md)."""

    row_key: Identifier | None = row_key_field("order_id/line_no/sku/lot_code")
    shipment_id: Identifier | None = Field(
        default=None, description="Made from the row key when omitted."
    )
    order_id: Identifier
    line_no: StrictInt = Field(default=1, ge=0, le=1_000_000)
    customer_id: Identifier
    customer_name: ShortText | None = None
    customer_email: Annotated[str, StringConstraints(max_length=320)] | None = None
    customer_phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    ship_to_line1: ShortText | None = Field(
        default=None, description="The ship-to address (FSMA 204's Ship-To Address): street."
    )
    ship_to_line2: ShortText | None = None
    ship_to_city: ShortText | None = None
    ship_to_region: ShortText | None = None
    ship_to_postal_code: Annotated[str, StringConstraints(max_length=32)] | None = None
    ship_to_country: Annotated[str, StringConstraints(max_length=64)] | None = None
    shipped_at: Rfc3339DateTime = Field(description="A moment after now refuses the row.")
    sku: Sku
    lot_code: LotCode
    quantity: Quantity
    uom: Uom | None = Field(default=None, description="The lot's unit when omitted.")

    @model_validator(mode="after")
    def _keyed(self) -> ShipmentHistoryRow:
        self.key_by_default(f"{self.order_id}/{self.line_no}/{self.sku}/{self.lot_code}")
        if self.shipment_id is None:
            self.shipment_id = f"IMP-{uuid5(IMPORTED_SHIPMENTS, self.key)}"
        return self

    @property
    def assigned_shipment_id(self) -> str:
        assert self.shipment_id is not None, "set by the validator"
        return self.shipment_id

    @property
    def customer(self) -> Customer:
        return Customer(
            customer_id=self.customer_id,
            name=self.customer_name,
            email=self.customer_email,
            phone=self.customer_phone,
            address=self.ship_to,
        )

    @property
    def ship_to(self) -> Address | None:
        """The `ship_to_*` columns as the customer's address; none when all are empty."""
        parts = {name: getattr(self, f"ship_to_{name}") for name in Address.model_fields}
        return Address(**parts) if any(parts.values()) else None


class ShipmentImportRow(ShipmentHistoryRow):
    """A shipments-file row with its lot found: the lot's id and unit."""

    lot_id: UUID = Field(
        description="The lot's id as receiving gives it for the row's SKU and lot code"
        " (`POST /lookups/lots`). Not checked here: recall dead-letters (`lot_mismatch`) a"
        " shipment whose id is a known lot of another SKU or lot code."
    )
    uom: Uom


class ShipmentImportRequest(ImportRequest[ShipmentImportRow]):
    pass


class ImportedShipmentRow(StrictModel):
    row_key: str
    shipment_id: str


class ShipmentImportResult(ImportResult[ImportedShipmentRow]):
    imported: list[ImportedShipmentRow] = Field(
        description="Rows announced now on `order-shipped`, `imported: true`, one event each."
    )
    rejected: list[RowRejection] = Field(
        default_factory=list,
        description="Rows a rule refused (a `shipped_at` in the future); nothing of them is"
        " kept, and their keys stay free.",
    )
