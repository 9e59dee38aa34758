"""The rules of `lottrace check`, pure: what the services' projections must agree on once
every event has been consumed, and what counts as work still in flight.

Lots: every lot receiving took in is known as received, with the same SKU, code and quantity,
to inventory and recall, and they know no received lot receiving does not. Shipments: every
shipment fulfillment made reached inventory and recall with the same quantities per lot, and
they know none it did not make. Stock: per lot, what was received is accounted for by what is
on hand, what production consumed and what was shipped (`unaccounted`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

ZERO = Decimal(0)


class Kind(StrEnum):
    LOT_MISSING = "lot-missing"
    LOT_UNKNOWN = "lot-unknown"
    LOT_IDENTITY = "lot-identity"
    RECEIVED_QUANTITY = "received-quantity"
    CONSUMED_QUANTITY = "consumed-quantity"
    LOT_BALANCE = "lot-balance"
    SHIPMENT_MISSING = "shipment-missing"
    SHIPMENT_UNKNOWN = "shipment-unknown"
    SHIPMENT_QUANTITY = "shipment-quantity"
    OUTBOX_STUCK = "outbox-stuck"


@dataclass(frozen=True)
class Difference:
    """One thing two services disagree on. `key` is the lot id or shipment id."""

    kind: Kind
    key: str
    services: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class LotRecord:
    """A lot as one service knows it. `receipt_seen` is false where the service knows the lot
    only from a shipment, a recall or as an input, not from its receipt."""

    lot_id: UUID
    sku: str
    lot_code: str
    received: Decimal
    consumed: Decimal = ZERO
    receipt_seen: bool = True


@dataclass(frozen=True)
class LotFlows:
    """Every quantity that moves a lot's stock. `adjusted` is signed (cycle counts); customer
    returns come in, returns to the supplier go out; moves between locations net to 0 over
    a lot and need no term."""

    received: Decimal
    on_hand: Decimal
    consumed: Decimal
    shipped: Decimal
    adjusted: Decimal
    returned: Decimal = ZERO
    vendor_returned: Decimal = ZERO


def unaccounted(flows: LotFlows) -> Decimal:
    """received + adjusted + returned - (on hand + consumed + shipped + returned to vendor): 0
    when every unit received is accounted for. The one statement of the stock balance."""
    came = flows.received + flows.adjusted + flows.returned
    went = flows.on_hand + flows.consumed + flows.shipped + flows.vendor_returned
    return came - went


@dataclass(frozen=True)
class StockRecord:
    """Inventory's totals of a lot over its locations."""

    lot_id: UUID
    on_hand: Decimal
    adjusted: Decimal
    returned: Decimal = ZERO
    vendor_returned: Decimal = ZERO


@dataclass(frozen=True)
class ShipmentLine:
    """What one shipment took of one lot, summed over lines and locations."""

    shipment_id: str
    lot_id: UUID
    quantity: Decimal


@dataclass(frozen=True)
class Projections:
    """What the audit reads from the four databases."""

    receiving_lots: tuple[LotRecord, ...]
    inventory_lots: tuple[LotRecord, ...]
    recall_lots: tuple[LotRecord, ...]
    stock: tuple[StockRecord, ...]
    fulfillment_shipments: tuple[ShipmentLine, ...]
    inventory_shipments: tuple[ShipmentLine, ...]
    recall_shipments: tuple[ShipmentLine, ...]


def lot_label(lot: LotRecord) -> str:
    return f"lot {lot.lot_code} ({lot.sku}, {lot.lot_id})"


# Recall keeps genealogy, not quantities consumed: only inventory's are compared.
CONSUMED_KEPT_BY = "inventory"


def compare_lots(
    receiving: Sequence[LotRecord], others: Mapping[str, Sequence[LotRecord]]
) -> list[Difference]:
    """Each other service against receiving, the lots' source: presence, identity, quantities
    (consumed ones only where kept: `CONSUMED_KEPT_BY`)."""
    differences: list[Difference] = []
    source = {lot.lot_id: lot for lot in receiving}
    for service, lots in others.items():
        known = {lot.lot_id: lot for lot in lots if lot.receipt_seen}
        for lot_id, lot in source.items():
            theirs = known.get(lot_id)
            if theirs is None:
                detail = f"{service} has no receipt"
                differences.append(_lot(Kind.LOT_MISSING, lot, service, detail))
            else:
                differences += _lot_fields(lot, theirs, service)
        for lot_id, theirs in known.items():
            if lot_id not in source:
                detail = f"received in {service}, unknown to receiving"
                differences.append(_lot(Kind.LOT_UNKNOWN, theirs, service, detail))
    return differences


def _lot(kind: Kind, lot: LotRecord, service: str, detail: str) -> Difference:
    return Difference(kind, str(lot.lot_id), ("receiving", service), f"{lot_label(lot)}: {detail}")


def _lot_fields(ours: LotRecord, theirs: LotRecord, service: str) -> list[Difference]:
    found = []
    if (ours.sku, ours.lot_code) != (theirs.sku, theirs.lot_code):
        detail = f"{service} calls it {theirs.lot_code} ({theirs.sku})"
        found.append(_lot(Kind.LOT_IDENTITY, ours, service, detail))
    if ours.received != theirs.received:
        detail = f"received {ours.received} in receiving, {theirs.received} in {service}"
        found.append(_lot(Kind.RECEIVED_QUANTITY, ours, service, detail))
    if service == CONSUMED_KEPT_BY and ours.consumed != theirs.consumed:
        detail = f"consumed {ours.consumed} in receiving, {theirs.consumed} in {service}"
        found.append(_lot(Kind.CONSUMED_QUANTITY, ours, service, detail))
    return found


def shipped_per_lot(lines: Iterable[ShipmentLine]) -> dict[UUID, Decimal]:
    totals: dict[UUID, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[line.lot_id] += line.quantity
    return dict(totals)


def compare_balances(
    receiving: Sequence[LotRecord], stock: Sequence[StockRecord], shipped: Mapping[UUID, Decimal]
) -> list[Difference]:
    """Per lot inventory stocks: receiving's received and consumed, fulfillment's shipped,
    inventory's on hand and adjustments must balance (`unaccounted`)."""
    lots = {lot.lot_id: lot for lot in receiving}
    differences = []
    for record in stock:
        lot = lots.get(record.lot_id)
        if lot is None:
            continue  # a lot-unknown difference already names it
        flows = LotFlows(
            received=lot.received,
            on_hand=record.on_hand,
            consumed=lot.consumed,
            shipped=shipped.get(record.lot_id, ZERO),
            adjusted=record.adjusted,
            returned=record.returned,
            vendor_returned=record.vendor_returned,
        )
        off = unaccounted(flows)
        if off != ZERO:
            detail = (
                f"{lot_label(lot)}: received {flows.received} + adjusted {flows.adjusted}"
                f" + returned {flows.returned} != on hand {flows.on_hand} + consumed"
                f" {flows.consumed} + shipped {flows.shipped} + returned to vendor"
                f" {flows.vendor_returned} ({off:+} unaccounted)"
            )
            services = ("receiving", "inventory", "fulfillment")
            differences.append(Difference(Kind.LOT_BALANCE, str(lot.lot_id), services, detail))
    return differences


def compare_shipments(
    fulfillment: Sequence[ShipmentLine], others: Mapping[str, Sequence[ShipmentLine]]
) -> list[Difference]:
    """Each other service against fulfillment, the shipments' source: presence, and the
    quantity of each lot in each shipment."""
    source = _by_shipment(fulfillment)
    differences = []
    for service, lines in others.items():
        theirs = _by_shipment(lines)
        pair = ("fulfillment", service)
        for shipment_id, lots in source.items():
            if shipment_id not in theirs:
                detail = f"shipment {shipment_id}: not in {service}"
                differences.append(Difference(Kind.SHIPMENT_MISSING, shipment_id, pair, detail))
            elif lots != theirs[shipment_id]:
                detail = (
                    f"shipment {shipment_id}: {_quantities(lots)} in fulfillment,"
                    f" {_quantities(theirs[shipment_id])} in {service}"
                )
                differences.append(Difference(Kind.SHIPMENT_QUANTITY, shipment_id, pair, detail))
        for shipment_id in sorted(set(theirs) - set(source)):
            detail = f"shipment {shipment_id}: in {service}, unknown to fulfillment"
            differences.append(Difference(Kind.SHIPMENT_UNKNOWN, shipment_id, pair, detail))
    return differences


def _by_shipment(lines: Iterable[ShipmentLine]) -> dict[str, dict[UUID, Decimal]]:
    shipments: dict[str, dict[UUID, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in lines:
        shipments[line.shipment_id][line.lot_id] += line.quantity
    return {shipment_id: dict(lots) for shipment_id, lots in sorted(shipments.items())}


def _quantities(lots: Mapping[UUID, Decimal]) -> str:
    return ", ".join(f"{quantity} of {lot_id}" for lot_id, quantity in sorted(lots.items()))


def compare(projections: Projections) -> list[Difference]:
    """Every difference between the projections, lots first."""
    p = projections
    return [
        *compare_lots(p.receiving_lots, {"inventory": p.inventory_lots, "recall": p.recall_lots}),
        *compare_balances(p.receiving_lots, p.stock, shipped_per_lot(p.fulfillment_shipments)),
        *compare_shipments(
            p.fulfillment_shipments,
            {"inventory": p.inventory_shipments, "recall": p.recall_shipments},
        ),
    ]


# ---------------------------------------------------------------------- work in flight


@dataclass(frozen=True)
class OutboxState:
    """A service's unpublished outbox rows and the age of the oldest, in seconds."""

    service: str
    unpublished: int
    oldest_seconds: float


@dataclass(frozen=True)
class GroupLag:
    """Records of a topic a consumer group has not committed yet."""

    group: str
    topic: str
    lag: int


@dataclass(frozen=True)
class Activity:
    """Work in flight at one moment; `published` is the sum of the topics' end offsets."""

    outboxes: tuple[OutboxState, ...]
    lags: tuple[GroupLag, ...]
    published: int

    @property
    def quiet(self) -> bool:
        return not any(o.unpublished for o in self.outboxes) and not any(g.lag for g in self.lags)

    def in_flight(self) -> list[str]:
        """One line per outbox with unpublished rows and per group and topic with lag."""
        lines = [
            f"{o.service} outbox: {o.unpublished} unpublished, oldest {o.oldest_seconds:.0f} s"
            for o in self.outboxes
            if o.unpublished
        ]
        lines += [f"{g.group} group: lag {g.lag} on {g.topic}" for g in self.lags if g.lag]
        return lines


def settled(before: Activity, after: Activity) -> bool:
    """Nothing in flight before and after reading the projections, and nothing published in
    between: what was read is one state that every consumer had caught up with."""
    return before.quiet and after.quiet and before.published == after.published


def stuck_outboxes(activity: Activity, *, older_than: float) -> list[Difference]:
    """Outboxes whose oldest unpublished row waited longer than `older_than` seconds: the
    relay is not publishing (see the service's log)."""
    return [
        Difference(
            Kind.OUTBOX_STUCK,
            outbox.service,
            (outbox.service,),
            f"{outbox.service} outbox: {outbox.unpublished} unpublished, the oldest for"
            f" {outbox.oldest_seconds:.0f} s (over {older_than:.0f} s)",
        )
        for outbox in activity.outboxes
        if outbox.unpublished and outbox.oldest_seconds > older_than
    ]


# ---------------------------------------------------------------------- the verdict


class Verdict(StrEnum):
    CLEAN = "clean"
    DIFFERENT = "different"
    IN_FLIGHT = "in-flight"


EXIT_CODES = {Verdict.CLEAN: 0, Verdict.DIFFERENT: 1, Verdict.IN_FLIGHT: 3}


@dataclass(frozen=True)
class CheckReport:
    """What `lottrace check` found: the differences, and the work in flight after reading."""

    differences: tuple[Difference, ...]
    activity: Activity
    settled: bool
    lots: int
    shipments: int

    @property
    def verdict(self) -> Verdict:
        """Clean when nothing differs; otherwise different, unless work was in flight, which
        may explain the differences (then wait for it: `--wait`). A stuck outbox is different:
        waiting does not empty it."""
        if not self.differences:
            return Verdict.CLEAN
        stuck = any(d.kind is Kind.OUTBOX_STUCK for d in self.differences)
        return Verdict.DIFFERENT if self.settled or stuck else Verdict.IN_FLIGHT

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def build_report(
    projections: Projections, before: Activity, after: Activity, *, stuck_after: float
) -> CheckReport:
    return CheckReport(
        differences=(*compare(projections), *stuck_outboxes(after, older_than=stuck_after)),
        activity=after,
        settled=settled(before, after),
        lots=len(projections.receiving_lots),
        shipments=len({line.shipment_id for line in projections.fulfillment_shipments}),
    )
