"""Recall and traceability rules. Pure: no I/O, no framework."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal, NamedTuple, Protocol, TypeVar
from uuid import UUID

from services.recall.records import Answers, CustomerStanding, LotUnits, RecallLotRef
from shared.contracts.events import ReportedUnits
from shared.errors import Conflict

T = TypeVar("T")


class NoticeTooLarge(ValueError):
    """One shipment entry does not fit in a notice even on its own: the notice cannot be sent."""


@dataclass(frozen=True)
class NoticeSize:
    """What a customer's notice costs in bytes: the message without shipments (envelope,
    headers, customer, and room for `part`/`parts`), and the most one message may hold."""

    base: int
    limit: int

    def fits(self, shipment_bytes: int, shipments: int) -> bool:
        """A message with these shipments (their entries joined by commas) fits the limit."""
        return self.base + shipment_bytes + max(0, shipments - 1) <= self.limit


def split_for_notices(
    shipments: Sequence[T],
    *,
    size_of: Callable[[T], int],
    size: NoticeSize,
    per_notice: int | None = None,
) -> list[list[T]]:
    """A customer's shipments in notices, in order, each under the message size limit: a part
    is closed before the next shipment would take it over the limit (or past `per_notice`
    shipments, when a count cap is set). Raises NoticeTooLarge when a single shipment cannot
    fit at all."""
    if per_notice is not None and per_notice < 1:
        raise ValueError("per_notice must be at least 1")
    parts: list[list[T]] = [[]]
    used = 0
    for shipment in shipments:
        entry = size_of(shipment)
        if not size.fits(entry, 1):
            raise NoticeTooLarge(
                f"one shipment entry of {entry} bytes with a notice base of {size.base} bytes"
                f" exceeds the {size.limit}-byte message limit"
            )
        current = parts[-1]
        full = per_notice is not None and len(current) >= per_notice
        if current and (full or not size.fits(used + entry, len(current) + 1)):
            parts.append([])
            used = 0
        parts[-1].append(shipment)
        used += entry
    return parts


@dataclass(frozen=True)
class Edge:
    """Genealogy: `input_lot_id` was consumed to make `lot_id`."""

    lot_id: UUID
    input_lot_id: UUID
    quantity: Any = None
    uom: str | None = None


@dataclass
class TraceNode:
    lot_id: UUID
    depth: int
    parents: list[UUID] = field(default_factory=list)


def trace_customers(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Who received a forward trace's shipment lines (plain values, in trace order): each
    customer once, by id, with the lot codes they received, each once, in order of first
    shipment. Plain values, as the trace route encodes them without a model per customer;
    their fields are `TraceCustomer`'s."""
    customers: dict[str, dict[str, Any]] = {}
    for line in lines:
        customer = customers.get(line["customer_id"])
        if customer is None:
            customer = customers[line["customer_id"]] = {
                "customer_id": line["customer_id"],
                "name": line["customer_name"],
                "lots": [],
            }
        if line["lot_code"] not in customer["lots"]:
            customer["lots"].append(line["lot_code"])
    return [customers[customer_id] for customer_id in sorted(customers)]


def walk(
    start: UUID, edges: Iterable[Edge], *, forward: bool, max_depth: int | None = None
) -> dict[UUID, TraceNode]:
    """Every lot reachable from `start` (made from it when forward, its inputs when backward),
    with its depth, at any depth unless `max_depth` is given; cycles in bad data end the walk
    instead of looping."""
    links: dict[UUID, list[UUID]] = defaultdict(list)
    for edge in edges:
        if forward:
            links[edge.input_lot_id].append(edge.lot_id)
        else:
            links[edge.lot_id].append(edge.input_lot_id)
    nodes = {start: TraceNode(start, 0)}
    frontier = [start]
    while frontier:
        following = []
        for lot_id in frontier:
            depth = nodes[lot_id].depth
            if max_depth is not None and depth >= max_depth:
                continue
            for next_id in links.get(lot_id, ()):
                if next_id not in nodes:
                    nodes[next_id] = TraceNode(next_id, depth + 1, [lot_id])
                    following.append(next_id)
                elif lot_id not in nodes[next_id].parents and next_id != start:
                    nodes[next_id].parents.append(lot_id)
        frontier = following
    return nodes


def made_from(roots: Sequence[UUID], edges: Iterable[Edge]) -> dict[UUID, UUID]:
    """Every lot made from the roots at any depth (the genealogy has no depth limit, in recall
    as in inventory), each with the root it descends from most directly. A root is not made
    from the roots; cycles in bad data end the walk."""
    children: dict[UUID, list[UUID]] = defaultdict(list)
    for edge in edges:
        children[edge.input_lot_id].append(edge.lot_id)
    via: dict[UUID, UUID] = {}
    seen = set(roots)
    frontier = [(root, root) for root in roots]
    while frontier:
        following = []
        for lot_id, root in frontier:
            for child in sorted(children.get(lot_id, ())):
                if child not in seen:
                    seen.add(child)
                    via[child] = root
                    following.append((child, root))
        frontier = following
    return via


def mermaid_genealogy(
    lots: dict[UUID, dict[str, Any]],
    edges: Iterable[Edge],
    *,
    highlight: UUID | None = None,
    customers: dict[UUID, int] | None = None,
) -> str:
    """A Mermaid flowchart of lots (input -> output), the traced lot highlighted, each lot
    with the number of customers who received it."""

    def node_id(lot_id: UUID) -> str:
        return "L" + lot_id.hex

    lines = ["flowchart LR"]
    for lot_id, lot in lots.items():
        label = f"{lot.get('lot_code', '?')}<br/>{lot.get('sku', '')}"
        count = (customers or {}).get(lot_id)
        if count:
            label += f"<br/>{count} customer{'s' if count != 1 else ''}"
        label = label.replace('"', "'")
        lines.append(f'    {node_id(lot_id)}["{label}"]')
    seen = set()
    for edge in edges:
        if (
            edge.lot_id in lots
            and edge.input_lot_id in lots
            and (edge.input_lot_id, edge.lot_id) not in seen
        ):
            seen.add((edge.input_lot_id, edge.lot_id))
            quantity = f"|{edge.quantity} {edge.uom}|" if edge.quantity is not None else ""
            lines.append(f"    {node_id(edge.input_lot_id)} -->{quantity} {node_id(edge.lot_id)}")
    if highlight is not None and highlight in lots:
        lines.append("    classDef traced fill:#fde68a,stroke:#b45309,stroke-width:2px")
        lines.append(f"    class {node_id(highlight)} traced")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NamedLot:
    """A lot as a shipment line names it, or as recall knows it: its id, SKU and lot code."""

    lot_id: UUID
    sku: str
    lot_code: str


def lot_contradictions(named: Iterable[NamedLot], known: Mapping[UUID, NamedLot]) -> list[str]:
    """Lines naming a known lot by its id but with another SKU or lot code, one reason each:
    the id is wrong (an imported shipment's lot id is the one its client looked up)."""
    return [
        f"lot {line.lot_id} is {lot.lot_code} of {lot.sku}, not {line.lot_code} of {line.sku}"
        for line in named
        if (lot := known.get(line.lot_id)) is not None
        and (lot.sku, lot.lot_code) != (line.sku, line.lot_code)
    ]


# ------------------------------------------------------------------ the recall loop

CheckLevel = Literal["A", "B", "C", "D", "E"]

# FDA Regulatory Procedures Manual 7-8: the share of consignees an effectiveness check
# contacts. B is "some percentage between C and A"; lottrace takes the middle.
CHECK_LEVEL_PERCENT: dict[str, int] = {"A": 100, "B": 50, "C": 10, "D": 2, "E": 0}
DEFAULT_CHECK_LEVEL: dict[str, CheckLevel] = {"I": "A", "II": "B", "III": "D"}
# The effectiveness (units recovered, in percent) a recall must reach before it closes.
DEFAULT_TARGET_PERCENT: dict[str, Decimal] = {
    "I": Decimal(100),
    "II": Decimal(95),
    "III": Decimal(90),
}


def check_level_of(classification: str, chosen: CheckLevel | None) -> CheckLevel:
    """The effectiveness check level of a recall: the one chosen, else its class's default."""
    return chosen or DEFAULT_CHECK_LEVEL[classification]


def target_of(classification: str, chosen: Decimal | None) -> Decimal:
    """The effectiveness a recall must reach before it closes: the one chosen, else its
    class's default."""
    return DEFAULT_TARGET_PERCENT[classification] if chosen is None else chosen


# Response kinds: which say the notice reached the customer, which answer the recall.
REACHING_KINDS = ("delivered", "acknowledged", "units-reported")
ACKNOWLEDGING_KINDS = ("acknowledged", "units-reported")
BOUNCING_KINDS = ("bounced",)


class ResponseRefused(Conflict):
    """A response or its units cannot count for the recall it names."""


def sample_size(level: str, consignees: int) -> int:
    """How many consignees an effectiveness check at this level verifies."""
    return math.ceil(consignees * CHECK_LEVEL_PERCENT[level] / 100)


def sample_rank(recall_id: str, customer_id: str) -> str:
    """A customer's place in the recall's check sample: the same on every read, for every
    replica, and unrelated to the customer's name or size."""
    return hashlib.sha256(f"{recall_id}\x00{customer_id}".encode()).hexdigest()


def check_sample(recall_id: str, customer_ids: Iterable[str], level: str) -> list[str]:
    """The consignees to verify at this check level: reproducible for the recall."""
    customers = list(customer_ids)
    size = sample_size(level, len(customers))
    if size == len(customers):  # level A: every consignee, no draw to make
        return sorted(customers)
    ranked = sorted(customers, key=lambda customer_id: sample_rank(recall_id, customer_id))
    return sorted(ranked[:size])


def refuse_unknown(recall_id: str, customer_id: str, *, known: bool, affected: bool) -> None:
    """A response counts only for a known recall that affects its customer."""
    if not known:
        raise ResponseRefused("recall_not_found", f"no recall {recall_id} is known")
    if not affected:
        raise ResponseRefused(
            "customer_not_affected",
            f"recall {recall_id} does not affect customer {customer_id}: it received none"
            " of its lots",
        )


def reported_lot(units: ReportedUnits, lots: Sequence[RecallLotRef]) -> RecallLotRef:
    """The recall's lot that reported units name, by id or by lot code; refused when the lot
    is outside the recall, or its code names several of the recall's lots."""
    if units.lot_id is not None:
        matches = [lot for lot in lots if lot.lot_id == units.lot_id]
    else:
        matches = [lot for lot in lots if lot.lot_code == units.lot_code]
    named = units.lot_id or units.lot_code
    if not matches:
        raise ResponseRefused("lot_not_in_recall", f"lot {named} is not a lot of this recall")
    if len(matches) > 1:
        raise ResponseRefused(
            "lot_ambiguous", f"lot code {named} names several lots of this recall: give lot_id"
        )
    return matches[0]


def return_recalls(named_recall: str | None, lot_recalls: Sequence[tuple[str, str]]) -> list[str]:
    """The recalls a returned unit of a lot counts for, given the (recall_id, status) of every
    recall of that lot: the recall the return names, or else every open recall of the lot."""
    if named_recall is not None:
        return [recall_id for recall_id, _ in lot_recalls if recall_id == named_recall]
    return [recall_id for recall_id, status in lot_recalls if status == "open"]


# ------------------------------------------------------------------ effectiveness

ZERO = Decimal(0)


class UnitFigures(NamedTuple):
    """Units of a recalled lot at a customer (or summed): where they are now. A NamedTuple:
    a large recall figures 100,000 of them per read."""

    shipped: Decimal = ZERO
    returned: Decimal = ZERO
    destroyed: Decimal = ZERO
    on_hand: Decimal = ZERO
    unaccounted: Decimal = ZERO
    recovered: Decimal = ZERO

    def times(self, customers: int) -> UnitFigures:
        """These figures for each of that many customers, summed."""
        return UnitFigures(*(figure * customers for figure in self))

    @classmethod
    def total(cls, figures: Sequence[UnitFigures]) -> UnitFigures:
        return cls(*(sum(column, ZERO) for column in zip(*figures, strict=True)))

    @property
    def over_returned(self) -> bool:
        """More units came back (or were reported back or destroyed) than were shipped to the
        customer: accepted, and flagged for a person to look at."""
        return self.returned + self.destroyed > self.shipped

    @property
    def exact_percent(self) -> Decimal:
        """Units recovered (returned or destroyed, at most what was shipped) in percent, not
        rounded: what the target is held against."""
        if self.shipped <= 0:
            return Decimal(100)
        return self.recovered * 100 / self.shipped

    @property
    def percent(self) -> Decimal:
        """The recovered percentage as shown, rounded down to 0.1: 99.96 % is not 100 %."""
        return self.exact_percent.quantize(Decimal("0.1"), rounding=ROUND_DOWN)


def unit_figures(units: LotUnits) -> UnitFigures:
    """A customer's units of a lot. Returned: the units received back, or the customer's own
    count when larger (still in transit). Unaccounted: shipped, less what came back, was
    destroyed or is reported on hand. Recovered never counts more than was shipped."""
    returned = max(units.returned, units.reported_returned or ZERO)
    destroyed = units.destroyed or ZERO
    shipped = units.shipped
    # An on-hand count older than the returns or destructions that followed it cannot still
    # hold those units: it counts at most what is left.
    on_hand = min(units.on_hand or ZERO, max(ZERO, shipped - returned - destroyed))
    return UnitFigures(
        shipped,
        returned,
        destroyed,
        on_hand,
        max(ZERO, shipped - returned - destroyed - on_hand),  # unaccounted
        min(shipped, returned + destroyed),  # recovered
    )


class Answered(Protocol):
    """A customer's answers to a recall, as a standing or a group of customers has them."""

    @property
    def acknowledged(self) -> bool: ...
    @property
    def returned(self) -> bool: ...


def is_silent(customer: Answered) -> bool:
    """No answer to the recall: no acknowledgement, no units reported, nothing sent back."""
    return not (customer.acknowledged or customer.returned)


@dataclass(frozen=True)
class CustomerCounts:
    affected: int
    notified: int
    delivered: int
    bounced: int
    acknowledged: int
    silent: int


def customer_counts(groups: Sequence[tuple[Answers, int]]) -> CustomerCounts:
    """The counts of customers, from groups of customers who answered alike."""
    return CustomerCounts(
        affected=sum(n for _, n in groups),
        notified=sum(n for a, n in groups if a.notified),
        delivered=sum(n for a, n in groups if a.reached),
        bounced=sum(n for a, n in groups if is_bounced(a)),
        acknowledged=sum(n for a, n in groups if a.acknowledged),
        silent=sum(n for a, n in groups if is_silent(a)),
    )


def is_bounced(answers: Answers) -> bool:
    """The notice bounced and never reached the customer another way."""
    return answers.bounced and not answers.reached


def below_target(percent: Decimal, target: Decimal) -> bool:
    return percent < target


def refuse_below_target(percent: Decimal, target: Decimal, *, override: str | None) -> None:
    """A recall closes once its effectiveness reaches its target, or with a reason to close it
    anyway (kept as the audit of that decision)."""
    if below_target(percent, target) and override is None:
        raise Conflict(
            "below_target",
            f"effectiveness is {percent}%, below the recall's target of {target}%:"
            " give override_reason to close it anyway",
        )


# ------------------------------------------------------------------ reminders

DEFAULT_REMINDER_DELAY = timedelta(hours=48)


def reminder_due(
    customer: CustomerStanding, *, now: datetime, delay: timedelta, most: int
) -> int | None:
    """The number of the reminder a customer is due now, or None: only to a silent customer,
    `delay` after the last notice or reminder, and at most `most` reminders in all."""
    if not is_silent(customer) or customer.reminders >= most:
        return None
    if customer.last_contact_at is None or customer.last_contact_at + delay > now:
        return None
    return customer.reminders + 1
