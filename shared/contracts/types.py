"""Value types shared by every contract: quantities, units, parties, money."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)


def _normalise(value: Decimal) -> Decimal:
    # "12.50" and "12.5" are the same amount; keep one spelling on the wire.
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _decimal_string(value: Decimal) -> str:
    return format(value, "f")


def require_distinct(values: Iterable[Hashable], message: str) -> None:
    """Refuses, with `message`, values that repeat: line numbers of one order, row keys of
    one batch."""
    listed = list(values)
    if len(set(listed)) != len(listed):
        raise ValueError(message)


_QUANTITY_NUMBER = Field(
    max_digits=18,
    decimal_places=6,
    allow_inf_nan=False,
    examples=["12", "12.5"],
    description="A decimal amount: a JSON number or a decimal string; emitted as a string.",
)

Quantity = Annotated[
    Decimal,
    _QUANTITY_NUMBER,
    Field(gt=0),
    AfterValidator(_normalise),
    PlainSerializer(_decimal_string, return_type=str, when_used="always"),
]
"""An amount moved: strictly positive."""

SignedQuantity = Annotated[
    Decimal,
    _QUANTITY_NUMBER,
    AfterValidator(_normalise),
    PlainSerializer(_decimal_string, return_type=str, when_used="always"),
]
"""An amount that may be negative or zero (stock levels, adjustments)."""

Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
]
"""An id chosen by the system that owns the entity (order id, receipt id, customer id)."""

Sku = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(examples=["OJ-1L"]),
]

LotCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(examples=["OJ-1L-20261121-0001"]),
]

Gtin = Annotated[
    str,
    StringConstraints(pattern=r"^(\d{8}|\d{12}|\d{13}|\d{14})$"),
    Field(examples=["09501101530003"], description="GTIN-8, -12, -13 or -14."),
]

Uom = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=16),
    Field(examples=["EA", "KG", "L"], description="Unit of measure code."),
]

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]

DEFAULT_UOM = "EA"


class ContractModel(BaseModel):
    """Base of every payload: tolerant of fields a newer producer adds, frozen once parsed."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class StrictModel(BaseModel):
    """Base of an HTTP body: it refuses a field it does not know, where a payload on a topic
    (`ContractModel`) tolerates one."""

    model_config = ConfigDict(extra="forbid")


class Address(ContractModel):
    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Annotated[str, StringConstraints(max_length=32)] | None = None
    country: Annotated[str, StringConstraints(max_length=64)] | None = None


class Customer(ContractModel):
    customer_id: Identifier
    name: ShortText | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    address: Address | None = None


class Supplier(ContractModel):
    supplier_id: Identifier
    name: ShortText | None = None


class Money(ContractModel):
    amount: Annotated[
        Decimal,
        Field(ge=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
        PlainSerializer(_decimal_string, return_type=str, when_used="always"),
    ]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        examples=["EUR"], description="ISO 4217 code."
    )
