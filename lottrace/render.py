"""How the CLI and the demo show things: rich tables, panels and trees of what the services
answer. Nothing here calls a service or exits; the commands and the demo print what it builds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from lottrace.client import DeadLetter
from services.inventory.schemas import LotView as StockLot
from services.recall.schemas import (
    AffectedCustomer,
    DrillView,
    Effectiveness,
    LotSummary,
    OutstandingCustomer,
    RecallView,
    TraceBackward,
    TraceForward,
    TraceLot,
    TraceShipment,
)
from services.receiving.schemas import LotView as ReceivedLot
from shared.gs1 import Gs1Scan

# Ids and lot codes are what people copy: wrap the prose columns first.
_KEEP_WHOLE = frozenset(
    {"lot code", "customer", "order", "shipment", "entry", "source", "key", "expires", "when"}
)
_NUMERIC = frozenset({"depth", "days", "on hand", "reserved", "available", "quantity", "shipments"})


def table_with(title: str, columns: Sequence[str]) -> Table:
    """A table whose id columns stay whole and whose numbers are right-aligned."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in _KEEP_WHOLE,
            justify="right" if column in _NUMERIC else "left",
        )
    return table


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """`table_with` the columns, holding the rows given."""
    table = table_with(title, columns)
    for row in rows:
        table.add_row(*row)
    return table


def _day(value: date | datetime | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def _lot_label(lot: TraceLot) -> str:
    code = escape(lot.lot_code or str(lot.lot_id))
    parts = [f"[bold]{code}[/]", escape(lot.sku or "?")]
    if lot.supplier_id:
        parts.append(f"from {escape(lot.supplier_name or lot.supplier_id)}")
    if lot.expiry_date:
        parts.append(f"expires {lot.expiry_date}")
    if not lot.received:
        parts.append("[yellow](no receipt known)[/]")
    return " · ".join(parts)


def lot_panel(lot: ReceivedLot, *, title: str = "Lot") -> Panel:
    supplier = lot.supplier
    return fields_panel(
        title,
        [
            ("lot code", f"[bold]{escape(lot.lot_code)}[/]"),
            ("SKU", escape(lot.sku) + (f"  (GTIN {lot.gtin})" if lot.gtin else "")),
            ("lot id", str(lot.lot_id)),
            (
                "supplier",
                escape(f"{supplier.name or supplier.supplier_id} ({supplier.supplier_id})")
                if supplier
                else "–",
            ),
            ("supplier lot", escape(lot.supplier_lot_code or "–")),
            ("produced", _day(lot.production_date)),
            ("expires", _day(lot.expiry_date)),
            (
                "received",
                f"{lot.received_quantity} {lot.uom}, first {_day(lot.first_received_at)}",
            ),
            ("consumed", f"{lot.consumed_quantity} {lot.uom} (by production)"),
        ],
    )


def fields_panel(title: str, rows: Sequence[tuple[str, str]]) -> Panel:
    """Named values one under the other, names dimmed, in a panel as wide as they need."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return Panel(table, title=title, expand=False)


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 customer`, `3 customers`: the number and the noun that agrees with it."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def genealogy_tree(backward: TraceBackward, forward: TraceForward) -> Tree:
    """The lot in the middle: what it was made from above, what was made from it below."""
    tree = Tree(_lot_label(backward.lot))
    if backward.inputs:
        made_from = tree.add("[dim]made from[/]")
        _branches(made_from, backward.lot.lot_id, list(backward.inputs))
    if forward.made_into:
        made_into = tree.add("[dim]made into[/]")
        _branches(made_into, forward.lot.lot_id, list(forward.made_into))
    customers = {customer.customer_id for customer in forward.customers}
    if customers:
        tree.add(f"[dim]shipped to[/] {counted(len(customers), 'customer')}")
    return tree


def _branches(
    node: Tree, parent: UUID, lots: Sequence[TraceLot], seen: frozenset[UUID] = frozenset()
) -> None:
    for lot in lots:
        if parent in lot.linked_to and lot.lot_id not in seen:
            branch = node.add(_lot_label(lot))
            _branches(branch, lot.lot_id, lots, seen | {lot.lot_id})


def backward_table(trace: TraceBackward) -> Table:
    table = table_with(
        "Backward: where it came from",
        ("depth", "lot code", "SKU", "supplier", "purchase order", "received", "used"),
    )
    codes = {lot.lot_id: lot.lot_code or str(lot.lot_id) for lot in [trace.lot, *trace.inputs]}

    def add(lot: TraceLot, used: str) -> None:
        receipts = trace.receipts.get(str(lot.lot_id), [])
        orders = sorted({r.purchase_order for r in receipts if r.purchase_order}) or (
            [lot.purchase_order] if lot.purchase_order else []
        )
        table.add_row(
            str(lot.depth),
            escape(lot.lot_code or "?"),
            escape(lot.sku or "?"),
            escape(lot.supplier_name or lot.supplier_id or "–"),
            escape(", ".join(orders) or "–"),
            _day(lot.received_at),
            escape(used),
        )

    add(trace.lot, "")
    for lot in trace.inputs:
        add(
            lot,
            "; ".join(
                f"{part.quantity} {part.uom or ''} into {codes.get(part.into_lot_id, '?')}"
                for part in lot.consumed
            ),
        )
    return table


def _shipment_row(shipment: TraceShipment) -> tuple[str, ...]:
    return (
        _day(shipment.shipped_at),
        escape(f"{shipment.customer_name or ''} ({shipment.customer_id})".strip()),
        escape(shipment.order_id),
        escape(shipment.shipment_id),
        escape(shipment.lot_code),
        f"{shipment.quantity} {shipment.uom}",
    )


def shipments_table(trace: TraceForward) -> Table:
    table = rows_table(
        "Forward: who received it",
        ("shipped", "received by", "order", "shipment", "lot code", "quantity"),
        map(_shipment_row, trace.shipments),
    )
    totals = trace.totals
    table.caption = (
        f"{counted(totals.lots, 'lot')} (the lot and what was made from it),"
        f" {counted(totals.customers, 'customer')},"
        f" {counted(totals.shipment_lines, 'shipment line')}"
        + (" [yellow](shipments truncated)[/]" if totals.shipments_truncated else "")
    )
    return table


def recall_panel(recall: RecallView) -> Panel:
    notices = "[green]complete[/]" if recall.notices_complete else "[yellow]being sent[/]"
    rows = [
        ("recall", f"[bold]{escape(recall.recall_id)}[/]"),
        ("status", recall.status),
        ("class", recall.classification),
        ("reason", escape(recall.reason)),
        ("scope", escape(json.dumps(recall.scope, ensure_ascii=False))),
        ("issued", f"{_day(recall.issued_at)} UTC by {escape(recall.requested_by)}"),
        ("lots", str(len(recall.affected_lots))),
        (
            "customers",
            f"{recall.affected_customer_count} affected, {recall.notified_customers} notified",
        ),
        ("shipped", str(recall.shipped_quantity)),
        ("notices", f"{notices}, {recall.late_notices} late"),
    ]
    if recall.closed_at:
        rows.append(
            ("closed", f"{_day(recall.closed_at)} UTC by {escape(recall.closed_by or '?')}")
        )
    return fields_panel("Recall", rows)


def recall_lots_table(recall: RecallView) -> Table:
    codes = {lot.lot_id: lot.lot_code for lot in recall.affected_lots}

    def row(lot: LotSummary) -> tuple[str, ...]:
        why = (
            f"made from {codes.get(lot.via_lot_id, str(lot.via_lot_id))}"
            if lot.via_lot_id
            else "in scope"
        )
        return escape(lot.lot_code), escape(lot.sku), escape(lot.supplier_id or "–"), escape(why)

    return rows_table(
        "Affected lots", ("lot code", "SKU", "supplier", "why"), map(row, recall.affected_lots)
    )


def recall_customers_table(
    customers: Sequence[AffectedCustomer], *, title: str = "Affected customers"
) -> Table:
    return rows_table(
        title,
        ("customer", "name", "email", "phone", "lots", "quantity", "shipments"),
        map(_customer_row, customers),
    )


def _customer_row(customer: AffectedCustomer) -> tuple[str, ...]:
    quantities: dict[str, Decimal] = {}
    for shipment in customer.shipments:
        quantities[shipment.uom] = quantities.get(shipment.uom, Decimal(0)) + shipment.quantity
    late = sum(1 for shipment in customer.shipments if shipment.late)
    return (
        escape(customer.customer_id),
        escape(customer.name or "–"),
        escape(customer.email or "–"),
        escape(customer.phone or "–"),
        escape(", ".join(sorted({s.lot_code for s in customer.shipments}))),
        ", ".join(f"{quantity} {uom}" for uom, quantity in quantities.items()),
        f"{len(customer.shipments)}" + (f" ({late} late)" if late else ""),
    )


def stock_table(lots: Sequence[StockLot], *, title: str, today: date | None = None) -> Table:
    today = today or datetime.now(UTC).date()
    columns = ("expires", "days", "SKU", "lot code", "location", "on hand", "reserved")
    rows = (_stock_row(lot, today) for lot in lots)
    return rows_table(title, (*columns, "available", "status"), rows)


def _stock_row(lot: StockLot, today: date) -> tuple[str, ...]:
    days = (lot.expiry_date - today).days if lot.expiry_date else None
    status = lot.status.value
    if lot.status.value != "available":
        status = f"[yellow]{status}[/]"
    return (
        _day(lot.expiry_date),
        "–" if days is None else str(days),
        escape(lot.sku),
        escape(lot.lot_code),
        escape(lot.location or "–"),
        f"{lot.on_hand} {lot.uom}",
        str(lot.reserved),
        str(lot.available),
        status,
    )


def scan_table(scan: Gs1Scan) -> Table:
    table = Table(title="GS1 scan", title_justify="left")
    table.add_column("AI")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    fields: list[tuple[str, str, Any]] = [
        ("00", "SSCC", scan.sscc),
        ("01", "GTIN", scan.gtin),
        ("10", "lot", scan.lot_code),
        ("11", "production date", scan.production_date),
        ("13", "packaging date", scan.packaging_date),
        ("15", "best before", scan.best_before_date),
        ("17", "expiry", scan.expiry_date),
        ("21", "serial", scan.serial),
        ("37", "count", scan.count),
    ]
    for ai, name, value in fields:
        if value is not None:
            table.add_row(f"({ai})", name, escape(str(value)))
    table.add_row("", "as printed", escape(scan.as_human_readable()))
    return table


def dead_letters_table(letters: Sequence[DeadLetter], *, title: str) -> Table:
    return rows_table(
        title,
        ("entry", "when", "error", "message", "source", "consumer group", "key"),
        map(_dead_letter_row, letters),
    )


def _dead_letter_row(letter: DeadLetter) -> tuple[str, ...]:
    source = "{}/{}@{}".format(
        *(part if part is not None else "?" for part in letter.source_position)
    )
    message = letter.error_message or ""
    return (
        f"{letter.topic} {letter.partition}:{letter.offset}",
        letter.written_at.strftime("%Y-%m-%d %H:%M:%S"),
        escape(letter.error_type or "?"),
        escape(message if len(message) <= 160 else f"{message[:160]}…"),
        escape(source),
        escape(letter.consumer_group or "?"),
        escape(key_text(letter.key)),
    )


def key_text(raw: bytes | None) -> str:
    """A key, header or value as text; a dash for none."""
    return "–" if raw is None else raw.decode("utf-8", errors="replace")


# ------------------------------------------------------------------ the recall loop


def effectiveness_panel(check: Effectiveness) -> Panel:
    customers, units = check.customers, check.units
    colour = "red" if check.below_target else "green"
    effective = f"[{colour}]{check.effectiveness_percent}%[/] of a {check.target_percent}% target"
    verify = counted(check.sample_size, "consignee")
    rows = [
        ("recall", f"[bold]{escape(check.recall_id)}[/] ({check.status})"),
        ("class", check.classification),
        ("effective", effective),
        ("customers", f"{customers.affected} affected, {customers.notified} notified,"
                      f" {customers.delivered} delivered, {customers.bounced} bounced"),
        ("answers", f"{customers.acknowledged} acknowledged, {customers.silent} silent"),
        ("units", f"{units.shipped} shipped, {units.returned} returned, {units.destroyed}"
                  f" destroyed, {units.on_hand} on hand, {units.unaccounted} unaccounted"),
        ("FDA check", f"level {check.check_level}: verify {verify}"),
        ("outstanding", counted(check.outstanding_count, "customer")),
    ]  # fmt: skip
    return fields_panel("Recall effectiveness", rows)


def effectiveness_lots_table(check: Effectiveness) -> Table:
    rows = (
        (escape(lot.lot_code), str(lot.shipped), str(lot.returned), str(lot.destroyed),
         str(lot.on_hand), str(lot.unaccounted), f"{lot.effectiveness_percent}%")
        for lot in check.lots
    )  # fmt: skip
    return rows_table(
        "Units per lot",
        ("lot code", "shipped", "returned", "destroyed", "on hand", "unaccounted", "effective"),
        rows,
    )


def outstanding_table(check: Effectiveness) -> Table:
    table = rows_table(
        "Outstanding customers",
        ("customer", "name", "state", "reminders", "unaccounted", "on hand"),
        map(_outstanding_row, check.outstanding),
    )
    if check.outstanding_count > len(check.outstanding):
        table.caption = f"{len(check.outstanding)} of {check.outstanding_count} shown"
    return table


def _outstanding_row(customer: OutstandingCustomer) -> tuple[str, ...]:
    state = "bounced" if customer.bounced else "silent" if customer.silent else "answered"
    return (
        escape(customer.customer_id), escape(customer.name or "–"), state,
        str(customer.reminders), str(customer.unaccounted), str(customer.on_hand),
    )  # fmt: skip


def drills_table(drills: Sequence[DrillView]) -> Table:
    return rows_table(
        "Recall drills",
        ("when", "scope", "lots", "customers", "shipped", "level", "total ms", "stages (ms)"),
        map(_drill_row, drills),
    )


def _drill_row(drill: DrillView) -> tuple[str, ...]:
    stages = ", ".join(f"{name} {ms:.0f}" for name, ms in drill.stages.items())
    return (
        f"{_day(drill.requested_at)}", escape(json.dumps(drill.scope, ensure_ascii=False)),
        str(drill.affected_lots), str(drill.affected_customer_count),
        str(drill.shipped_quantity), drill.check_level, f"{drill.total_ms:.0f}", stages,
    )  # fmt: skip
