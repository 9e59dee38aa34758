"""Receiving rules: lot numbering, when a re-receipt may join an existing lot, and whether
input lots can give what a production receipt consumes. Pure: no I/O, no framework."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from shared.errors import DomainError, ErrorKind

DEFAULT_LOT_CODE_PATTERN = "{sku}-{received:%Y%m%d}-{seq:04d}"
PATTERN_FIELDS = frozenset({"sku", "received", "seq", "supplier_lot_code", "supplier_id", "gtin"})
_SAMPLE: dict[str, Any] = {
    "sku": "SKU",
    "received": datetime(2026, 1, 31, 12, 0),
    "seq": 1,
    "supplier_lot_code": "S1",
    "supplier_id": "SUP",
    "gtin": "09501101530003",
}
MAX_LOT_CODE_LENGTH = 64


class ReceivingError(DomainError):
    """A receipt that cannot be accepted; `code` is stable, the message names the problem.
    Invalid unless it clashes with a lot as it stands (then `kind=ErrorKind.CONFLICT`).
    `field` is the receipt field the problem is about, where one is."""

    kind = ErrorKind.INVALID

    def __init__(
        self, code: str, message: str, *, kind: ErrorKind | None = None, field: str | None = None
    ) -> None:
        super().__init__(code, message, kind=kind)
        self.field = field


# ------------------------------------------------------------------------- lot numbering


@dataclass(frozen=True)
class LotCodeRule:
    pattern: str

    def __post_init__(self) -> None:
        try:
            parsed = list(string.Formatter().parse(self.pattern))
            fields = {name for _, name, _, _ in parsed if name is not None}
            unknown = fields - PATTERN_FIELDS
            if unknown:
                raise ValueError(
                    f"uses unknown fields {sorted(unknown)}; allowed: {sorted(PATTERN_FIELDS)}"
                )
            self.pattern.format(**_SAMPLE)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise ValueError(f"lot code pattern {self.pattern!r} is invalid: {error}") from error
        # Without a part that varies, every receipt of a SKU would land in one lot.
        varying = {"seq", "supplier_lot_code"} & fields or any(
            name == "received" and "%" in (spec or "") for _, name, spec, _ in parsed
        )
        if not varying:
            raise ValueError(
                f"lot code pattern {self.pattern!r} never varies: use {{seq}},"
                " {supplier_lot_code} or a date such as {received:%Y%m%d}"
            )

    @property
    def needs_sequence(self) -> bool:
        return "seq" in self.fields

    @property
    def needs_supplier_lot_code(self) -> bool:
        return "supplier_lot_code" in self.fields

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.pattern) if name)

    def render(
        self,
        *,
        sku: str,
        received: datetime,
        seq: int,
        supplier_lot_code: str | None,
        supplier_id: str | None,
        gtin: str | None,
    ) -> str:
        if self.needs_supplier_lot_code and not supplier_lot_code:
            raise ReceivingError(
                "supplier_lot_code_required",
                f"the lot code rule for {sku} uses the supplier's lot code: give supplier_lot_code",
            )
        code = self.pattern.format(
            sku=sku,
            received=received,
            seq=seq,
            supplier_lot_code=supplier_lot_code or "",
            supplier_id=supplier_id or "",
            gtin=gtin or "",
        )
        if not code or len(code) > MAX_LOT_CODE_LENGTH:
            raise ReceivingError(
                "invalid_lot_code", f"generated lot code {code!r} is empty or too long"
            )
        return code


@dataclass(frozen=True)
class LotNumbering:
    """Which rule numbers a lot: per SKU first, then per supplier, then the default."""

    default: LotCodeRule = field(default_factory=lambda: LotCodeRule(DEFAULT_LOT_CODE_PATTERN))
    by_sku: dict[str, LotCodeRule] = field(default_factory=dict)
    by_supplier: dict[str, LotCodeRule] = field(default_factory=dict)

    def rule_for(self, sku: str, supplier_id: str | None) -> LotCodeRule:
        if sku in self.by_sku:
            return self.by_sku[sku]
        if supplier_id and supplier_id in self.by_supplier:
            return self.by_supplier[supplier_id]
        return self.default

    @classmethod
    def from_mapping(cls, document: dict[str, Any]) -> LotNumbering:
        """Build from `{default: pattern, skus: {sku: pattern}, suppliers: {id: pattern}}`."""
        unknown = set(document) - {"default", "skus", "suppliers"}
        if unknown:
            raise ValueError(f"unknown keys in lot code rules: {sorted(unknown)}")

        def rule(where: str, value: Any) -> LotCodeRule:
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"lot code rule {where} must be a non-empty pattern")
            return LotCodeRule(value)

        default = document.get("default", DEFAULT_LOT_CODE_PATTERN)
        return cls(
            default=rule("default", default),
            by_sku={
                str(k): rule(f"for SKU {k}", v) for k, v in (document.get("skus") or {}).items()
            },
            by_supplier={
                str(k): rule(f"for supplier {k}", v)
                for k, v in (document.get("suppliers") or {}).items()
            },
        )


# ------------------------------------------------------------------------- lots


DATE_FIELDS = ("production_date", "expiry_date", "best_before_date")


def date_field_of(problem: str) -> str | None:
    """The date a problem of `LotDates.problems` or `conflicting_dates` is about: it names
    that date first."""
    return next((name for name in DATE_FIELDS if problem.startswith(name)), None)


@dataclass(frozen=True)
class LotDates:
    production_date: date | None = None
    expiry_date: date | None = None
    best_before_date: date | None = None

    def problems(self) -> list[str]:
        found = []
        if self.production_date and self.expiry_date and self.expiry_date < self.production_date:
            found.append("expiry_date is before production_date")
        if (
            self.production_date
            and self.best_before_date
            and self.best_before_date < self.production_date
        ):
            found.append("best_before_date is before production_date")
        return found


def conflicting_dates(existing: LotDates, incoming: LotDates) -> list[str]:
    """Dates both sides state and state differently: such a receipt is not the same lot."""
    conflicts = []
    for name in DATE_FIELDS:
        mine, theirs = getattr(existing, name), getattr(incoming, name)
        if mine is not None and theirs is not None and mine != theirs:
            conflicts.append(f"{name} {theirs} differs from the lot's {mine}")
    return conflicts


def merged_dates(existing: LotDates, incoming: LotDates) -> LotDates:
    """A re-receipt may fill in a date the lot did not have yet."""
    return LotDates(
        production_date=existing.production_date or incoming.production_date,
        expiry_date=existing.expiry_date or incoming.expiry_date,
        best_before_date=existing.best_before_date or incoming.best_before_date,
    )


def check_dates(dates: LotDates) -> None:
    if problems := dates.problems():
        raise ReceivingError("invalid_dates", "; ".join(problems), field=date_field_of(problems[0]))


class KnownLot(Protocol):
    """A lot as it stands, as far as joining it is concerned."""

    @property
    def lot_code(self) -> str: ...

    @property
    def uom(self) -> str: ...

    @property
    def dates(self) -> LotDates: ...


def check_same_lot(existing: KnownLot, *, sku: str, uom: str, dates: LotDates) -> None:
    """A re-receipt joins a lot only in the lot's unit and without contradicting its dates."""
    named = f"lot {existing.lot_code} of {sku}"
    if existing.uom != uom:
        raise ReceivingError(
            "uom_mismatch",
            f"{named} is counted in {existing.uom}, not {uom}",
            kind=ErrorKind.CONFLICT,
            field="uom",
        )
    if conflicts := conflicting_dates(existing.dates, dates):
        raise ReceivingError(
            "lot_dates_conflict",
            f"{named} exists with other dates: {'; '.join(conflicts)}",
            kind=ErrorKind.CONFLICT,
            field=date_field_of(conflicts[0]),
        )


# ------------------------------------------------------------------------- production


@dataclass(frozen=True)
class InputLot:
    lot_id: Any
    lot_code: str
    sku: str
    uom: str
    available: Decimal


@dataclass(frozen=True)
class InputRequest:
    lot_id: Any | None
    lot_code: str | None
    sku: str | None
    quantity: Decimal
    uom: str | None

    def describe(self) -> str:
        if self.lot_id is not None:
            return f"lot {self.lot_id}"
        return f"lot {self.lot_code} of {self.sku}"


def check_consumption(request: InputRequest, lot: InputLot | None, *, produced_lot_id: Any) -> None:
    """Refuse an input that does not exist, is the produced lot itself, or cannot give enough."""
    if lot is None:
        raise ReceivingError("unknown_input_lot", f"input {request.describe()} is not a known lot")
    if request.sku is not None and request.sku != lot.sku:
        raise ReceivingError(
            "input_sku_mismatch", f"input lot {lot.lot_code} is of {lot.sku}, not {request.sku}"
        )
    if lot.lot_id == produced_lot_id:
        raise ReceivingError("input_is_output", f"lot {lot.lot_code} cannot be made from itself")
    if request.uom is not None and request.uom != lot.uom:
        raise ReceivingError(
            "uom_mismatch",
            f"input lot {lot.lot_code} is counted in {lot.uom}, not {request.uom}",
        )
    if request.quantity > lot.available:
        raise ReceivingError(
            "insufficient_input",
            f"input lot {lot.lot_code} has {lot.available} {lot.uom} left,"
            f" {request.quantity} requested",
            kind=ErrorKind.CONFLICT,
        )


# ------------------------------------------------------------------------- cost


def blended_unit_cost(
    cost: Decimal | None,
    currency: str | None,
    quantity: Decimal,
    new_cost: Decimal | None,
    new_currency: str | None,
    new_quantity: Decimal,
) -> tuple[Decimal | None, str | None]:
    """The lot's actual unit cost after a re-receipt: the quantity-weighted average."""
    if new_cost is None:
        return cost, currency
    if cost is None:
        return new_cost, new_currency
    if currency != new_currency:
        raise ReceivingError(
            "currency_mismatch",
            f"the lot is costed in {currency}; this receipt is in {new_currency}",
            kind=ErrorKind.CONFLICT,
            field="currency",
        )
    total = quantity + new_quantity
    blended = (cost * quantity + new_cost * new_quantity) / total
    return blended.quantize(Decimal("0.000001")), currency
