"""A recall's effectiveness check: read once from the projection, figured by the domain's rules,
and given as JSON, CSV (one row per customer) or XLSX (summary, lots, customers)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

import xlsxwriter

from services.recall import db
from services.recall.domain import (
    ACKNOWLEDGING_KINDS,
    BOUNCING_KINDS,
    REACHING_KINDS,
    UnitFigures,
    below_target,
    check_sample,
    customer_counts,
    is_silent,
    unit_figures,
)
from services.recall.records import CustomerLotUnits, CustomerStanding
from services.recall.reports import csv_cell
from services.recall.schemas import (
    Effectiveness,
    EffectivenessCustomers,
    EffectivenessUnits,
    LotEffectiveness,
    OutstandingCustomer,
    OverReturn,
)
from shared.records import built_from
from shared.runtime.database import Connection, Record

NO_UNITS = UnitFigures()
CUSTOMER_COLUMNS = (
    "customer_id", "name", "in_sample", "notified", "delivered", "bounced", "acknowledged",
    "silent", "reminders", "shipped", "returned", "destroyed", "on_hand", "unaccounted",
    "over_returned",
)  # fmt: skip


class CustomerCheck(NamedTuple):
    """One affected customer in the check: where it stands, and its units of the recall."""

    standing: CustomerStanding
    units: UnitFigures
    in_sample: bool
    over_returned: bool

    @property
    def outstanding(self) -> bool:
        return is_silent(self.standing) or self.units.unaccounted > 0 or self.units.on_hand > 0


@dataclass(frozen=True)
class Check:
    """Everything the effectiveness of one recall is figured from."""

    recall: Record
    customers: list[CustomerCheck]
    lots: dict[UUID, tuple[str, UnitFigures]]
    over: list[CustomerLotUnits]
    sample: list[str]

    @property
    def total(self) -> UnitFigures:
        total = UnitFigures()
        for _, figures in self.lots.values():
            total = total.plus(figures)
        return total


async def read_check(connection: Connection, recall: Record) -> Check:
    """The check of `recall` (a row of db.get_recall), from one consistent read."""
    recall_id = recall["recall_id"]
    standings = await standings_of(connection, recall_id)
    units = await db.customer_lot_units(connection, recall_id)
    return figured(recall, standings, units)


async def standings_of(connection: Connection, recall_id: str) -> list[CustomerStanding]:
    """Every affected customer of the recall, read by the domain's response kinds."""
    return await db.customer_standings(
        connection,
        recall_id,
        reaching=REACHING_KINDS,
        acknowledging=ACKNOWLEDGING_KINDS,
        bouncing=BOUNCING_KINDS,
    )


def figured(
    recall: Record, standings: Sequence[CustomerStanding], units: Sequence[CustomerLotUnits]
) -> Check:
    per_customer: dict[str, UnitFigures] = {}
    per_lot: dict[UUID, tuple[str, list[UnitFigures]]] = {}
    over: list[CustomerLotUnits] = []
    for row in units:
        figures = unit_figures(row)
        known = per_customer.get(row.customer_id)
        per_customer[row.customer_id] = figures if known is None else known.plus(figures)
        per_lot.setdefault(row.lot_id, (row.lot_code, []))[1].append(figures)
        if figures.over_returned:
            over.append(row)
    over.sort(key=lambda row: (row.customer_id, row.lot_code))
    lots = {lot_id: (code, UnitFigures.total(all_)) for lot_id, (code, all_) in per_lot.items()}
    flagged = {row.customer_id for row in over}
    sample = check_sample(recall["recall_id"], [s.customer_id for s in standings], _level(recall))
    in_sample = set(sample)
    customers = [
        CustomerCheck(
            standing=standing,
            units=per_customer.get(standing.customer_id, NO_UNITS),
            in_sample=standing.customer_id in in_sample,
            over_returned=standing.customer_id in flagged,
        )
        for standing in standings
    ]
    return Check(recall, customers, dict(sorted(lots.items(), key=_by_code)), over, sample)


def _by_code(item: tuple[UUID, tuple[str, UnitFigures]]) -> tuple[str, UUID]:
    return item[1][0], item[0]


def _level(recall: Record) -> str:
    return str(recall["check_level"] or "A")


def effectiveness_target(recall: Record) -> Decimal:
    return Decimal(recall["target_percent"] if recall["target_percent"] is not None else 100)


def _units(figures: UnitFigures) -> dict[str, Any]:
    return {
        "shipped": figures.shipped,
        "returned": figures.returned,
        "destroyed": figures.destroyed,
        "on_hand": figures.on_hand,
        "unaccounted": figures.unaccounted,
        "effectiveness_percent": figures.percent,
    }


def view(check: Check, *, outstanding_limit: int) -> Effectiveness:
    recall, total = check.recall, check.total
    outstanding = [customer for customer in check.customers if customer.outstanding]
    return Effectiveness(
        recall_id=recall["recall_id"],
        status=recall["status"],
        classification=recall["classification"],
        check_level=_level(recall),
        sample_size=len(check.sample),
        sample=check.sample,
        target_percent=effectiveness_target(recall),
        effectiveness_percent=total.percent,
        below_target=below_target(total.percent, effectiveness_target(recall)),
        customers=EffectivenessCustomers(
            **vars(customer_counts([c.standing for c in check.customers]))
        ),
        units=EffectivenessUnits(**_units(total)),
        lots=[
            LotEffectiveness(lot_id=lot_id, lot_code=code, **_units(figures))
            for lot_id, (code, figures) in check.lots.items()
        ],
        over_returned=[_over(row) for row in check.over],
        outstanding_count=len(outstanding),
        outstanding=[_outstanding(c) for c in outstanding[:outstanding_limit]],
    )


def _over(row: CustomerLotUnits) -> OverReturn:
    figures = unit_figures(row)
    return built_from(OverReturn, row, returned=figures.returned, destroyed=figures.destroyed)


def _outstanding(customer: CustomerCheck) -> OutstandingCustomer:
    standing = customer.standing
    return OutstandingCustomer(
        customer_id=standing.customer_id,
        name=standing.name,
        silent=is_silent(standing),
        bounced=standing.bounced and not standing.reached,
        reminders=standing.reminders,
        unaccounted=customer.units.unaccounted,
        on_hand=customer.units.on_hand,
    )


def customer_rows(check: Check) -> list[list[Any]]:
    """One row per affected customer, in CUSTOMER_COLUMNS order."""
    return [
        [
            c.standing.customer_id, c.standing.name, c.in_sample, c.standing.notified,
            c.standing.reached, c.standing.bounced and not c.standing.reached,
            c.standing.acknowledged, is_silent(c.standing), c.standing.reminders,
            c.units.shipped, c.units.returned, c.units.destroyed, c.units.on_hand,
            c.units.unaccounted, c.over_returned,
        ]
        for c in check.customers
    ]  # fmt: skip


def as_csv(check: Check) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CUSTOMER_COLUMNS)
    for row in customer_rows(check):
        writer.writerow([_csv(value) for value in row])
    return buffer.getvalue()


def _csv(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return csv_cell(value)


def as_xlsx(check: Check, effectiveness: Effectiveness) -> bytes:
    """Sheets: Summary (figure, value), Lots (units per lot), Customers (as the CSV)."""
    output = io.BytesIO()
    workbook = xlsxwriter.Workbook(output, {"in_memory": True})
    header = workbook.add_format({"bold": True, "bottom": 1})
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
    _sheet(workbook, header, "Summary", ("figure", "value"), [list(row) for row in summary])
    lot_columns = ("lot_code", *EffectivenessUnits.model_fields)
    lot_rows = [
        [lot.lot_code, *(getattr(lot, c) for c in lot_columns[1:])] for lot in effectiveness.lots
    ]
    _sheet(workbook, header, "Lots", lot_columns, lot_rows)
    _sheet(workbook, header, "Customers", CUSTOMER_COLUMNS, customer_rows(check))
    workbook.close()
    return output.getvalue()


def _sheet(
    workbook: Any, header: Any, name: str, columns: Sequence[str], rows: list[list[Any]]
) -> None:
    sheet = workbook.add_worksheet(name)
    for index, column in enumerate(columns):
        sheet.write_string(0, index, column, header)
    for row_index, row in enumerate(rows, start=1):
        for index, value in enumerate(row):
            if isinstance(value, bool):
                sheet.write_boolean(row_index, index, value)
            elif isinstance(value, (int, Decimal)):
                sheet.write_number(row_index, index, float(value))
            elif value is not None:
                sheet.write_string(row_index, index, str(value))
    sheet.freeze_panes(1, 0)
