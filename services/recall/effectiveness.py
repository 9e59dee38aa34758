"""A recall's effectiveness check: read once from the projection (customers grouped by how they
stand, so a recall of 100,000 customers is a few hundred groups), figured by the domain's
rules, and given as JSON, CSV (one row per customer) or XLSX (summary, lots, customers)."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from services.recall import db
from services.recall.domain import (
    ACKNOWLEDGING_KINDS,
    BOUNCING_KINDS,
    REACHING_KINDS,
    UnitFigures,
    below_target,
    check_sample,
    customer_counts,
    is_bounced,
    is_silent,
    unit_figures,
)
from services.recall.records import Answers, CustomerGroup, CustomerStanding
from services.recall.schemas import (
    Effectiveness,
    EffectivenessCustomers,
    EffectivenessUnits,
    LotEffectiveness,
    OutstandingCustomer,
    OverReturn,
)
from shared import tables
from shared.runtime.database import Connection, Record
from shared.tables import Table

CUSTOMER_COLUMNS = (
    "customer_id", "name", "in_sample", "notified", "delivered", "bounced", "acknowledged",
    "silent", "reminders", "shipped", "returned", "destroyed", "on_hand", "unaccounted",
    "over_returned",
)  # fmt: skip


class GroupCheck(NamedTuple):
    """Customers who stand alike: their answers, each one's units, and per lot."""

    answers: Answers
    units: UnitFigures
    lots: tuple[tuple[UUID, UnitFigures], ...]
    customers: list[str]

    @property
    def outstanding(self) -> bool:
        """Silent, or with units unaccounted for or still on hand."""
        return is_silent(self.answers) or self.units.unaccounted > 0 or self.units.on_hand > 0

    @property
    def over_returned(self) -> bool:
        return any(figures.over_returned for _, figures in self.lots)


@dataclass(frozen=True)
class Check:
    """Everything the effectiveness of one recall is figured from."""

    recall: Record
    groups: list[GroupCheck]
    lots: dict[UUID, tuple[str, UnitFigures]]
    sample: list[str]

    @property
    def total(self) -> UnitFigures:
        return UnitFigures.total([figures for _, figures in self.lots.values()])

    def customers(
        self, *, outstanding: bool = False, over_returned: bool = False
    ) -> Iterator[tuple[str, GroupCheck]]:
        """Every customer (or the outstanding ones, or those with units over-returned) with its
        group, in customer id order."""
        groups = [
            g
            for g in self.groups
            if (g.outstanding or not outstanding) and (g.over_returned or not over_returned)
        ]
        # Lazily: the view takes the first thousand outstanding of 100,000 customers.
        pairs = [zip(g.customers, itertools.repeat(g), strict=False) for g in groups]
        return heapq.merge(*pairs, key=lambda pair: pair[0])


async def read_check(connection: Connection, recall: Record) -> Check:
    """The check of `recall` (a row of db.get_recall), from one consistent read."""
    recall_id = recall["recall_id"]
    groups = await groups_of(connection, recall_id)
    codes = {row["lot_id"]: row["lot_code"] for row in await db.recall_lots(connection, recall_id)}
    return figured(recall, groups, codes)


async def groups_of(connection: Connection, recall_id: str) -> list[CustomerGroup]:
    """The recall's affected customers grouped by how they stand, read by the domain's
    response kinds."""
    return await db.customer_groups(
        connection,
        recall_id,
        reaching=REACHING_KINDS,
        acknowledging=ACKNOWLEDGING_KINDS,
        bouncing=BOUNCING_KINDS,
    )


async def standings_of(connection: Connection, recall_id: str) -> list[CustomerStanding]:
    """Every affected customer of the recall, read by the domain's response kinds."""
    return await db.customer_standings(
        connection,
        recall_id,
        reaching=REACHING_KINDS,
        acknowledging=ACKNOWLEDGING_KINDS,
        bouncing=BOUNCING_KINDS,
    )


def figured(recall: Record, groups: Sequence[CustomerGroup], codes: Mapping[UUID, str]) -> Check:
    checks: list[GroupCheck] = []
    per_lot: dict[UUID, list[UnitFigures]] = {}
    for group in groups:
        lots = tuple((lot.lot_id, unit_figures(lot)) for lot in group.lots)
        for lot_id, figures in lots:
            per_lot.setdefault(lot_id, []).append(figures.times(len(group.customers)))
        units = UnitFigures.total([figures for _, figures in lots])
        checks.append(GroupCheck(group.answers, units, lots, group.customers))
    totals = {lot_id: (codes[lot_id], UnitFigures.total(all_)) for lot_id, all_ in per_lot.items()}
    everyone = [customer for group in groups for customer in group.customers]
    sample = check_sample(recall["recall_id"], everyone, _level(recall))
    return Check(recall, checks, dict(sorted(totals.items(), key=_by_code)), sample)


def _by_code(item: tuple[UUID, tuple[str, UnitFigures]]) -> tuple[str, UUID]:
    return item[1][0], item[0]


def _level(recall: Record) -> str:
    return str(recall["check_level"])


def effectiveness_target(recall: Record) -> Decimal:
    return Decimal(recall["target_percent"])


def outstanding_ids(check: Check, limit: int) -> list[str]:
    """The first `limit` outstanding customers, whose names the view shows."""
    return [customer for customer, _ in itertools.islice(check.customers(outstanding=True), limit)]


def _units(figures: UnitFigures) -> dict[str, Any]:
    return {
        "shipped": figures.shipped,
        "returned": figures.returned,
        "destroyed": figures.destroyed,
        "on_hand": figures.on_hand,
        "unaccounted": figures.unaccounted,
        "effectiveness_percent": figures.percent,
    }


def view(check: Check, names: Mapping[str, str], *, outstanding_limit: int) -> Effectiveness:
    recall, total = check.recall, check.total
    outstanding = itertools.islice(check.customers(outstanding=True), outstanding_limit)
    return Effectiveness(
        recall_id=recall["recall_id"],
        status=recall["status"],
        classification=recall["classification"],
        check_level=_level(recall),
        sample_size=len(check.sample),
        sample=check.sample,
        target_percent=effectiveness_target(recall),
        effectiveness_percent=total.percent,
        below_target=below_target(total.exact_percent, effectiveness_target(recall)),
        customers=EffectivenessCustomers(
            **vars(customer_counts([(g.answers, len(g.customers)) for g in check.groups]))
        ),
        units=EffectivenessUnits(**_units(total)),
        lots=[
            LotEffectiveness(lot_id=lot_id, lot_code=code, **_units(figures))
            for lot_id, (code, figures) in check.lots.items()
        ],
        over_returned=_over(check),
        outstanding_count=sum(len(g.customers) for g in check.groups if g.outstanding),
        outstanding=[_outstanding(c, g, names) for c, g in outstanding],
    )


def _over(check: Check) -> list[OverReturn]:
    codes = {lot_id: code for lot_id, (code, _) in check.lots.items()}
    return [
        OverReturn(customer_id=customer, lot_id=lot_id, lot_code=codes[lot_id],
                   shipped=f.shipped, returned=f.returned, destroyed=f.destroyed)
        for customer, group in check.customers(over_returned=True)
        for lot_id, f in group.lots
        if f.over_returned
    ]  # fmt: skip


def _outstanding(customer: str, group: GroupCheck, names: Mapping[str, str]) -> OutstandingCustomer:
    return OutstandingCustomer(
        customer_id=customer,
        name=names.get(customer),
        silent=is_silent(group.answers),
        bounced=is_bounced(group.answers),
        reminders=group.answers.reminders,
        unaccounted=group.units.unaccounted,
        on_hand=group.units.on_hand,
    )


def customer_rows(check: Check, names: Mapping[str, str]) -> list[list[Any]]:
    """One row per affected customer, in CUSTOMER_COLUMNS order."""
    sample = set(check.sample)
    return [
        [
            customer, names.get(customer), customer in sample, g.answers.notified,
            g.answers.reached, is_bounced(g.answers), g.answers.acknowledged,
            is_silent(g.answers), g.answers.reminders, g.units.shipped, g.units.returned,
            g.units.destroyed, g.units.on_hand, g.units.unaccounted, g.over_returned,
        ]
        for customer, g in check.customers()
    ]  # fmt: skip


def as_csv(check: Check, names: Mapping[str, str]) -> str:
    return tables.as_csv(_customers_table(check, names)).decode("utf-8")


def as_xlsx(check: Check, effectiveness: Effectiveness, names: Mapping[str, str]) -> bytes:
    """Sheets: Summary (figure, value), Lots (units per lot), Customers (as the CSV)."""
    summary = [
        ("recall_id", effectiveness.recall_id),
        ("check_level", effectiveness.check_level),
        ("sample_size", effectiveness.sample_size),
        ("target_percent", effectiveness.target_percent),
        ("effectiveness_percent", effectiveness.effectiveness_percent),
        *((f"customers_{k}", v) for k, v in effectiveness.customers.model_dump().items()),
        *((f"units_{k}", v) for k, v in effectiveness.units.model_dump().items()),
        ("outstanding_count", effectiveness.outstanding_count),
    ]
    lot_columns = ("lot_code", *EffectivenessUnits.model_fields)
    lot_rows = [
        (lot.lot_code, *(getattr(lot, c) for c in lot_columns[1:])) for lot in effectiveness.lots
    ]
    return tables.as_xlsx(
        [
            Table("Summary", ("figure", "value"), tuple(summary)),
            Table("Lots", lot_columns, tuple(lot_rows)),
            _customers_table(check, names),
        ]
    )


def _customers_table(check: Check, names: Mapping[str, str]) -> Table:
    rows = tuple(tuple(row) for row in customer_rows(check, names))
    return Table("Customers", CUSTOMER_COLUMNS, rows)
