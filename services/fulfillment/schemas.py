"""HTTP request and response bodies of the fulfillment service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from shared.contracts.types import Identifier, Quantity, SignedQuantity


class LineRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_no: StrictInt = Field(ge=0)  # not "1", 1.0 or true: the document says integer
    quantity: Quantity | None = Field(default=None, description="All that remains when omitted.")


class ShipmentRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"order_id": "SO-1001"},
                {"order_id": "SO-1001", "scans": ["]C10109501101530003172612311010D9T"]},
            ]
        },
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
            numbers = [line.line_no for line in self.lines]
            if len(numbers) != len(set(numbers)):
                raise ValueError("a line may appear once")
        return self


class LotLineView(BaseModel):
    """A quantity of one lot for one order line: what an allocation and a shipment share."""

    model_config = ConfigDict(extra="forbid")

    line_no: int
    sku: str
    lot_id: UUID
    lot_code: str
    quantity: SignedQuantity
    uom: str


class ShippedLine(LotLineView):
    pass


class ShipmentView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shipment_id: str
    order_id: str
    customer: dict[str, Any]
    shipped_at: datetime
    shipped_by: str | None = None
    lines: list[ShippedLine]


class OrderLineView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_no: int
    sku: str
    uom: str
    ordered: SignedQuantity
    shipped: SignedQuantity


class AllocationView(LotLineView):
    expiry_date: date | None = None
    gtin: str | None = None
    blocked: str | None = None


class BackorderView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_no: int
    sku: str
    quantity: SignedQuantity
    uom: str
    reason: str


class OrderView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str
    status: str
    customer: dict[str, Any] | None
    placed_at: datetime | None = None
    allocation_revision: int
    lines: list[OrderLineView]
    allocations: list[AllocationView]
    backordered: list[BackorderView]
    shipments: list[ShipmentView]
