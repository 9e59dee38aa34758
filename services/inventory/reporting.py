"""The lot reports' figures (docs/reports.md): sell rates and what will not sell before expiry,
sell-through, pace and cover, fast and slow movers, return rates, supplier scores. Pure: facts
read by `db.py` in, report models out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from uuid import UUID

from services.inventory.domain import (
    QC_HOLD_REASON,
    UNPICKABLE_LOCATIONS,
    QcState,
    blocks_of,
    earliest_allocatable_expiry,
    fefo_order,
)
from services.inventory.schemas import (
    LotMovement,
    LotMovementReport,
    ReturnGroup,
    ReturnsReport,
    ShortDatedLot,
    ShortDatedReport,
    SkuMovers,
    SupplierScore,
    SupplierScorecard,
)
from shared.quantities import ZERO
from shared.records import built_from

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
TENTH = Decimal("0.1")
# The history's name for a quality hold (a QC quarantine on receipt is one too, told apart by
# its reason).
HELD_CHANGE = "hold"
# The reports' windows, in days.
MAX_DAYS = 3650
# A lot moving at least this many times its SKU's average pace is fast; at most SLOW, slow.
FAST = Decimal("1.5")
SLOW = Decimal("0.5")


class Pace(StrEnum):
    FAST = "fast"
    STEADY = "steady"
    SLOW = "slow"


@dataclass(frozen=True)
class FactRules:
    """The rules the lots' facts are read by, passed to SQL: where stock is not picked from,
    what names a quality hold, and the reason that makes one the QC quarantine on receipt."""

    unpickable: tuple[str, ...] = UNPICKABLE_LOCATIONS
    held_change: str = HELD_CHANGE
    qc_hold_reason: str = QC_HOLD_REASON


FACT_RULES = FactRules()


@dataclass(frozen=True)
class ExpiryWindow:
    """The short-dated report's expiry dates: from the first date a lot can still be shipped
    today through `within_days` days from today."""

    first: date
    last: date

    @classmethod
    def of(cls, today: date, within_days: int) -> ExpiryWindow:
        return cls(earliest_allocatable_expiry(today), today + timedelta(days=within_days))

    def __contains__(self, day: date | None) -> bool:
        return day is not None and self.first <= day <= self.last


@dataclass(frozen=True)
class LotReportFacts:
    """What inventory knows of one received lot, as the reports need it. Shipments imported
    at onboarding (`shipped_before`) moved no stock here, but they are the lot's sales: they
    count as shipped, and as received (the lots file gave what was left on hand)."""

    lot_id: UUID
    lot_code: str
    sku: str
    supplier_id: str | None
    received_at: datetime
    expiry_date: date | None
    blocks: list[str]
    qc_state: str | None
    recall_id: str | None
    received_here: Decimal
    shipped_here: Decimal
    shipped_before: Decimal  # by the shipments imported at onboarding
    on_hand: Decimal
    sellable: Decimal  # on hand at the locations stock is picked from
    last_shipped: date | None
    held: bool  # put on a quality hold at least once, the QC quarantine on receipt aside

    @property
    def received_on(self) -> date:
        return self.received_at.astimezone(UTC).date()

    @property
    def received(self) -> Decimal:
        return self.received_here + self.shipped_before

    @property
    def shipped(self) -> Decimal:
        return self.shipped_here + self.shipped_before

    @property
    def qc_quarantined(self) -> bool:
        """Received `qc_required`: quarantined on receipt until its QC release."""
        return self.qc_state is not None

    def for_sale(self, today: date) -> bool:
        """Nothing blocks it: allocation's rule (not quarantined, recalled, rejected, expired)."""
        return not blocks_of(stored=self.blocks, expiry_date=self.expiry_date, today=today)


@dataclass(frozen=True)
class ReturnedUnits:
    """Units of a lot customers returned for one reason."""

    lot_id: UUID
    reason: str
    quantity: Decimal


@dataclass(frozen=True)
class ShippedDay:
    """Units of a lot shipped on one (UTC) day: the fact sell rates are measured on."""

    lot_id: UUID
    day: date
    quantity: Decimal


# ------------------------------------------------------------------ the figures


def daily_rate(shipped: Decimal, days: int) -> Decimal:
    """Units per day: what shipped over `days` days, spread evenly."""
    return shipped / days if days > 0 else ZERO


def selling_days(expiry_date: date, today: date) -> int:
    """The days a lot can still be shipped: from today through its expiry date."""
    return max((expiry_date - earliest_allocatable_expiry(today)).days + 1, 0)


def sold_before_expiry(lots: Sequence[tuple[Decimal, int]], rate: Decimal) -> list[Decimal]:
    """What of each lot sells before it expires, for a SKU's lots in FEFO order given as (on
    hand, selling days): at `rate` units a day, each lot sells after the lots before it, so
    it gets what the days up to its expiry sell less what those lots took."""
    taken = ZERO
    sold: list[Decimal] = []
    for on_hand, days in lots:
        share = min(on_hand, max(rate * days - taken, ZERO)).quantize(CENT, ROUND_DOWN)
        sold.append(share)
        taken += share
    return sold


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """`part` as a percentage of `whole`, to a tenth; none of nothing."""
    if whole <= 0:
        return None
    return (part * HUNDRED / whole).quantize(TENTH, ROUND_HALF_UP)


def sell_through_percent(shipped: Decimal, received: Decimal) -> Decimal | None:
    return percent(shipped, received)


def return_rate_percent(returned: Decimal, shipped: Decimal) -> Decimal | None:
    return percent(returned, shipped)


def units_per_day(facts: LotReportFacts, today: date) -> Decimal:
    """Shipped per day since receipt: up to today while stock is left, else to its last
    shipment (a lot sold out in a week moved fast, however long ago)."""
    until = today if facts.on_hand > 0 or facts.last_shipped is None else facts.last_shipped
    days = max((until - facts.received_on).days + 1, 1)
    return daily_rate(facts.shipped, days)


def days_of_cover(on_hand: Decimal, pace: Decimal) -> Decimal | None:
    """Days until the lot runs out at its pace; none when it does not move."""
    if pace <= 0:
        return None
    return (max(on_hand, ZERO) / pace).quantize(TENTH, ROUND_HALF_UP)


def pace_of(units_a_day: Decimal, sku_average: Decimal) -> Pace:
    """Fast or slow against the average pace of its SKU's lots; a lot that does not move is
    slow."""
    if units_a_day <= 0 or units_a_day <= sku_average * SLOW:
        return Pace.SLOW
    if units_a_day >= sku_average * FAST:
        return Pace.FAST
    return Pace.STEADY


def shelf_life_days(facts: LotReportFacts) -> int | None:
    """Days from the lot's receipt to its expiry date (none without one)."""
    if facts.expiry_date is None:
        return None
    return (facts.expiry_date - facts.received_on).days


def average(values: Iterable[Decimal | int]) -> Decimal | None:
    numbers = [Decimal(value) for value in values]
    if not numbers:
        return None
    return (sum(numbers, ZERO) / len(numbers)).quantize(TENTH, ROUND_HALF_UP)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


# ------------------------------------------------------------------ the reports


def short_dated(
    facts: Iterable[LotReportFacts],
    shipped_per_sku: Mapping[str, Decimal],
    *,
    today: date,
    within_days: int,
    sales_days: int,
) -> ShortDatedReport:
    """Lots for sale expiring within the days, each with what its SKU's pace sells in time.
    `facts` hold every lot of those SKUs expiring by then; `shipped_per_sku` what each SKU
    shipped over the last `sales_days` days."""
    window = ExpiryWindow.of(today, within_days)
    by_sku: dict[str, list[LotReportFacts]] = defaultdict(list)
    for lot in facts:
        if lot.expiry_date in window and lot.for_sale(today) and lot.sellable > 0:
            by_sku[lot.sku].append(lot)
    rows = [
        row
        for sku, lots in by_sku.items()
        for row in _short_dated_rows(
            lots, daily_rate(shipped_per_sku.get(sku, ZERO), sales_days), today
        )
    ]
    rows.sort(key=lambda row: (row.expiry_date, row.sku, row.lot_code))
    return ShortDatedReport(today=today, within_days=within_days, sales_days=sales_days, lots=rows)


def _short_dated_rows(
    lots: list[LotReportFacts], rate: Decimal, today: date
) -> list[ShortDatedLot]:
    """One SKU's lots, sold in FEFO order at its rate."""
    lots = sorted(
        lots, key=lambda lot: fefo_order(lot.expiry_date, lot.received_at, lot.lot_id, "")
    )
    days = [selling_days(lot.expiry_date or date.max, today) for lot in lots]
    sold = sold_before_expiry([(lot.sellable, d) for lot, d in zip(lots, days, strict=True)], rate)
    return [
        built_from(
            ShortDatedLot,
            lot,
            days_left=left,
            on_hand=lot.sellable,
            daily_sell_rate=_cents(rate),
            sells_in_time=share,
            wont_sell_in_time=lot.sellable - share,
        )
        for lot, left, share in zip(lots, days, sold, strict=True)
    ]


def lot_movement(
    facts: Iterable[LotReportFacts], *, today: date, received_within_days: int
) -> LotMovementReport:
    """Each lot's sell-through, pace and cover, and its pace against its SKU's lots."""
    lots = sorted(facts, key=lambda lot: (lot.sku, lot.received_at, lot.lot_code))
    paces = {lot.lot_id: units_per_day(lot, today) for lot in lots}
    by_sku: dict[str, list[LotReportFacts]] = defaultdict(list)
    for lot in lots:
        by_sku[lot.sku].append(lot)
    averages = {
        sku: sum((paces[lot.lot_id] for lot in group), ZERO) / len(group)
        for sku, group in by_sku.items()
    }
    rows = [
        built_from(
            LotMovement,
            lot,
            received_on=lot.received_on,
            sell_through_percent=sell_through_percent(lot.shipped, lot.received),
            units_per_day=_cents(paces[lot.lot_id]),
            days_of_cover=days_of_cover(lot.on_hand, paces[lot.lot_id]),
            movement=pace_of(paces[lot.lot_id], averages[lot.sku]).value,
        )
        for lot in lots
    ]
    return LotMovementReport(
        today=today,
        received_within_days=received_within_days,
        lots=rows,
        skus=[
            _movers(sku, [row for row in rows if row.sku == sku], average_pace)
            for sku, average_pace in averages.items()
        ],
    )


def _movers(sku: str, rows: Sequence[LotMovement], average_pace: Decimal) -> SkuMovers:
    return SkuMovers(
        sku=sku,
        lots=len(rows),
        average_units_per_day=_cents(average_pace),
        fast=[row.lot_code for row in rows if row.movement == Pace.FAST],
        slow=[row.lot_code for row in rows if row.movement == Pace.SLOW],
    )


def returns(
    facts: Iterable[LotReportFacts],
    returned: Iterable[ReturnedUnits],
    *,
    today: date,
    received_within_days: int,
) -> ReturnsReport:
    """Units returned against units shipped, by lot, SKU, supplier and reason."""
    lots = {lot.lot_id: lot for lot in facts}
    units = [unit for unit in returned if unit.lot_id in lots]
    back: dict[UUID, Decimal] = defaultdict(Decimal)
    reasons: dict[str | None, Decimal] = defaultdict(Decimal)
    for unit in units:
        back[unit.lot_id] += unit.quantity
        reasons[unit.reason] += unit.quantity
    shipped_total = sum((lot.shipped for lot in lots.values()), ZERO)
    by_lot = [
        _return_group("lot", lot.lot_code, back[lot.lot_id], lot.shipped, sku=lot.sku)
        for lot in lots.values()
        if back.get(lot.lot_id)
    ]
    return ReturnsReport(
        today=today,
        received_within_days=received_within_days,
        by_lot=sorted(by_lot, key=lambda row: (-row.returned, row.key or "", row.sku or "")),
        by_sku=_grouped("sku", lots.values(), back, lambda lot: lot.sku),
        by_supplier=_grouped("supplier", lots.values(), back, lambda lot: lot.supplier_id),
        by_reason=[
            _return_group("reason", reason, reasons[reason], shipped_total)
            for reason in _by_name(reasons)
        ],
    )


def _grouped(
    dimension: str,
    lots: Iterable[LotReportFacts],
    back: Mapping[UUID, Decimal],
    key: Callable[[LotReportFacts], str | None],
) -> list[ReturnGroup]:
    """Returned and shipped summed over the lots that share a key, for keys with returns."""
    shipped: dict[str | None, Decimal] = defaultdict(Decimal)
    returned: dict[str | None, Decimal] = defaultdict(Decimal)
    for lot in lots:
        shipped[key(lot)] += lot.shipped
        returned[key(lot)] += back.get(lot.lot_id, ZERO)
    return [
        _return_group(dimension, name, returned[name], shipped[name]) for name in _by_name(returned)
    ]


def _by_name(totals: Mapping[str | None, Decimal]) -> list[str | None]:
    """Keys with something returned, most returned first."""
    return sorted((k for k, v in totals.items() if v > 0), key=lambda k: (-totals[k], k or ""))


def _return_group(
    dimension: str, key: str | None, returned: Decimal, shipped: Decimal, sku: str | None = None
) -> ReturnGroup:
    return ReturnGroup(
        dimension=dimension,
        key=key,
        sku=sku,
        returned=returned,
        shipped=shipped,
        return_rate_percent=return_rate_percent(returned, shipped),
    )


def supplier_scorecard(
    facts: Iterable[LotReportFacts],
    returned: Iterable[ReturnedUnits],
    *,
    today: date,
    received_within_days: int,
) -> SupplierScorecard:
    """Per supplier: what came in, how it fared in QC, holds, returns and recalls, and how
    much shelf life it arrived with."""
    by_supplier: dict[str | None, list[LotReportFacts]] = defaultdict(list)
    for lot in facts:
        by_supplier[lot.supplier_id].append(lot)
    back: dict[UUID, Decimal] = defaultdict(Decimal)
    for unit in returned:
        back[unit.lot_id] += unit.quantity
    scores = [_score(supplier, lots, back) for supplier, lots in by_supplier.items()]
    scores.sort(key=lambda score: (-score.lots, score.supplier_id or ""))
    return SupplierScorecard(
        today=today, received_within_days=received_within_days, suppliers=scores
    )


def _score(
    supplier_id: str | None, lots: Sequence[LotReportFacts], back: Mapping[UUID, Decimal]
) -> SupplierScore:
    shipped = sum((lot.shipped for lot in lots), ZERO)
    returned = sum((back.get(lot.lot_id, ZERO) for lot in lots), ZERO)
    shelf_lives = [days for lot in lots if (days := shelf_life_days(lot)) is not None]
    return SupplierScore(
        supplier_id=supplier_id,
        lots=len(lots),
        units_received=sum((lot.received for lot in lots), ZERO),
        qc_quarantined_lots=sum(1 for lot in lots if lot.qc_quarantined),
        qc_failed_lots=sum(1 for lot in lots if lot.qc_state == QcState.FAILED),
        held_lots=sum(1 for lot in lots if lot.held),
        shipped=shipped,
        returned=returned,
        return_rate_percent=return_rate_percent(returned, shipped),
        recalls=len({lot.recall_id for lot in lots if lot.recall_id}),
        recalled_lots=sum(1 for lot in lots if lot.recall_id),
        average_shelf_life_days_at_receipt=average(shelf_lives),
    )
