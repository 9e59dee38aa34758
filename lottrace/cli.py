"""The `lottrace` command line.

Platform: `dev` starts everything locally (what `make run` does), `demo` tells the seed story
against it. People and scripts: `trace` follows a lot back to its suppliers and forward to its
customers, `recall` issues and follows recalls, `lots expiring` lists what expires soon, `scan`
reads a GS1 barcode. Operators: `dlq list` and `dlq replay` for dead letters, `hash-key` for
API keys, `contracts` for the AsyncAPI document, `check` to audit the services against each
other, `backup` and `restore` for every service database.

Commands that call the services take their addresses from `LOTTRACE_<SERVICE>_URL` (default:
the ports `make run` uses) and the key from `LOTTRACE_API_KEY`; Kafka commands take the
brokers from `KAFKA_BOOTSTRAP_SERVERS` and TLS/SASL from the `KAFKA_*` settings the services
read. Exit status: 0 done, 1 the platform refused or could not be reached, 2 bad input.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from uuid import UUID

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from lottrace.client import (
    API_KEY_VARIABLE,
    DEFAULT_URLS,
    AmbiguousLotCode,
    Connection,
    DeadLetter,
    LotNotFound,
    LottraceClient,
    NotReplayable,
    ReplayMessage,
    Service,
    ServiceError,
    ServiceUnreachable,
    ServiceUrls,
    dead_letter_topic_of,
    dev_platform_key,
    distinct_records,
    kafka_settings,
    publish_replays,
    read_dead_letters,
    replay_message,
    url_variable,
)
from services.inventory.schemas import LotView as StockLot
from services.recall.schemas import (
    AffectedCustomer,
    RecallRequest,
    RecallView,
    TraceBackward,
    TraceForward,
    TraceLot,
)
from services.receiving.schemas import LotView as ReceivedLot
from shared.contracts.events import RecallScope
from shared.contracts.topics import TOPICS
from shared.gs1 import Gs1Error, Gs1Scan, parse_gs1
from shared.runtime.auth import DEFAULT_ITERATIONS, MIN_ITERATIONS, Role

T = TypeVar("T")

app = typer.Typer(help="lottrace: lot tracking, FEFO allocation and recalls.", no_args_is_help=True)
recall_app = typer.Typer(
    help="Issue a recall and follow it to the last customer.", no_args_is_help=True
)
lots_app = typer.Typer(help="Lots in stock.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: records a consumer refused, kept in `<topic>.dlq` with the reason.",
    no_args_is_help=True,
)
app.add_typer(recall_app, name="recall")
app.add_typer(lots_app, name="lots")
app.add_typer(dlq_app, name="dlq")


@app.command()
def dev(
    kafka_port: Annotated[int, typer.Option(help="Port of the embedded broker.")] = 9092,
    postgres_port: Annotated[int, typer.Option(help="Port of the embedded PostgreSQL.")] = 5432,
    log_dir: Annotated[
        Path | None, typer.Option(help="Where service logs go (default: logs/ in the data folder).")
    ] = None,
    auto_ship: Annotated[
        bool, typer.Option(help="Fulfillment ships every allocation at once.")
    ] = False,
    home: Annotated[
        Path | None,
        typer.Option(
            help="The data folder (default: $LOTTRACE_HOME, or .lottrace/ in the checkout)."
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option(help="Delete the data folder's data first (asks; see --yes).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before --reset.")] = False,
) -> None:
    """Start the whole platform on the embedded broker and PostgreSQL (what `make run` does).

    The data stays in the data folder between runs; Ctrl-C drains, then stops."""
    from lottrace.devstack import Platform, run_until_interrupted
    from lottrace.home import HomeError, default_home, describe

    folder = (home or default_home()).absolute()
    try:
        if reset:
            _reset_home(folder, yes=yes)
        platform = Platform(
            kafka_port=kafka_port,
            postgres_port=postgres_port,
            log_dir=log_dir,
            home=folder,
            service_env={"fulfillment": {"FULFILLMENT_AUTO_SHIP": "true"}} if auto_ship else {},
        )
    except HomeError as error:
        fail(f"lottrace cannot start: {error}")
    except OSError as error:
        fail(f"lottrace cannot start: {describe(error)} ({error.filename or folder})")
    raise typer.Exit(asyncio.run(run_until_interrupted(platform)))


def _reset_home(folder: Path, *, yes: bool) -> None:
    """Delete a data folder's data, after asking, and only when no platform runs on it."""
    from lottrace.home import DataHome, HomeLock

    if not folder.exists():
        return
    if not yes and not typer.confirm(
        f"Delete every lot, order, shipment and recall in {folder}?", default=False
    ):
        fail("nothing deleted", code=2)
    lock = HomeLock(folder)
    lock.acquire()  # refuses while a platform runs on it
    try:
        DataHome(folder).reset()
    finally:
        lock.release()
    Console(stderr=True, highlight=False).print(f"deleted the data in {folder}")


@app.command()
def contracts(
    out: Annotated[
        Path, typer.Option(help="Folder for the AsyncAPI and JSON Schema documents.")
    ] = Path("docs/contracts"),
) -> None:
    """Write the AsyncAPI document and the JSON Schemas of every event."""
    from shared.contracts.docs import write_documents

    for path in write_documents(out):
        typer.echo(path)


@app.command("hash-key")
def hash_key(
    name: Annotated[
        str, typer.Option(help="Whose key: recorded as the actor of every change made with it.")
    ],
    role: Annotated[
        list[Role], typer.Option("--role", help="A role of the key; repeat for several.")
    ],
    generate: Annotated[
        bool,
        typer.Option(help="Make a new random key (printed once, on stderr) instead of reading."),
    ] = False,
    iterations: Annotated[
        int, typer.Option(min=MIN_ITERATIONS, help="PBKDF2-HMAC-SHA256 iterations.")
    ] = DEFAULT_ITERATIONS,
) -> None:
    """Print the API_KEYS entry {name, roles, hash} of a key: only the hash is ever stored.

    The key is read from stdin (one line; prompted for, hidden, on a terminal), never from the
    command line, where shell history and `ps` would keep it. With --generate a new key is
    made. The entry goes to stdout as one JSON line: add it to the list in API_KEYS or in the
    API_KEYS_FILE (YAML or JSON).
    """
    from shared.runtime.auth import generate_key, hash_key, parse_entries

    if generate:
        key = generate_key()
    elif sys.stdin.isatty():
        key = typer.prompt("API key", hide_input=True, confirmation_prompt=True)
    else:
        key = sys.stdin.readline().rstrip("\r\n")
    roles = sorted({item.value for item in role})
    try:
        entry = {"name": name, "roles": roles, "hash": hash_key(key, iterations=iterations)}
        parse_entries([entry], source="the new key")
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if generate:
        typer.echo(f"API key: {key}", err=True)
        typer.echo(
            f"Shown once: give it to {name}; send it as `Authorization: Bearer <key>`.", err=True
        )
    typer.echo(json.dumps(entry))


# ---------------------------------------------------------------------- output, errors, options


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


class TraceFormat(StrEnum):
    TABLE = "table"
    MERMAID = "mermaid"
    JSON = "json"


class Classification(StrEnum):
    I = "I"  # noqa: E741 (the FDA's name for the class)
    II = "II"
    III = "III"


def stdout() -> Console:
    return Console(highlight=False)


def fail(message: str, *, hint: str | None = None, code: int = 1) -> NoReturn:
    """One line on stderr (and a hint), then exit: 1 the platform said no, 2 bad input."""
    errors = Console(stderr=True, highlight=False)
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        errors.print(f"hint: {escape(hint)}", soft_wrap=True)
    raise typer.Exit(code)


def run_against_platform(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; what the platform refuses becomes one line and exit status 1."""
    try:
        return asyncio.run(work)
    except ServiceError as error:
        fail(str(error), hint=error.hint)
    except ServiceUnreachable as error:
        fail(str(error))
    except KafkaError as error:
        fail(
            f"Kafka: {error}",
            hint="the brokers come from --bootstrap / KAFKA_BOOTSTRAP_SERVERS, TLS and SASL"
            " from the KAFKA_* variables",
        )
    except TimeoutError as error:
        fail(str(error))


def write_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


CONNECTION_PANEL = "Connection"
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_VARIABLE,
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help="API key, sent as `Authorization: Bearer`. Prefer the environment variable: a"
        " command line shows in `ps` and in the shell history.",
    ),
]


def _url_option(service: Service) -> Any:
    return typer.Option(
        f"--{service}-url",
        envvar=url_variable(service),
        rich_help_panel=CONNECTION_PANEL,
        help=f"Base URL of the {service} service.",
    )


ReceivingUrlOption = Annotated[str, _url_option("receiving")]
InventoryUrlOption = Annotated[str, _url_option("inventory")]
FulfillmentUrlOption = Annotated[str, _url_option("fulfillment")]
RecallUrlOption = Annotated[str, _url_option("recall")]
BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        rich_help_panel=CONNECTION_PANEL,
        help="Kafka brokers, comma-separated. TLS and SASL come from the KAFKA_* variables the"
        " services read.",
    ),
]
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def connection(api_key: str | None, **urls: str | None) -> Connection:
    return Connection(urls=ServiceUrls().but(**urls), api_key=api_key or dev_platform_key())


# ---------------------------------------------------------------------- rendering (shared with
# the demo)


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
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
    supplier = lot.supplier
    rows = [
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
        ("received", f"{lot.received_quantity} {lot.uom}, first {_day(lot.first_received_at)}"),
        ("consumed", f"{lot.consumed_quantity} {lot.uom} (by production)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return Panel(table, title=title, expand=False)


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
        tree.add(
            f"[dim]shipped to[/] {len(customers)} customer{'s' if len(customers) != 1 else ''}"
        )
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


def shipments_table(trace: TraceForward) -> Table:
    table = table_with(
        "Forward: who received it",
        ("shipped", "received by", "order", "shipment", "lot code", "quantity"),
    )
    for shipment in trace.shipments:
        table.add_row(
            _day(shipment.shipped_at),
            escape(f"{shipment.customer_name or ''} ({shipment.customer_id})".strip()),
            escape(shipment.order_id),
            escape(shipment.shipment_id),
            escape(shipment.lot_code),
            f"{shipment.quantity} {shipment.uom}",
        )
    totals = trace.totals
    table.caption = (
        f"{totals.lots} lot{'s' if totals.lots != 1 else ''} (the lot and what was made from it),"
        f" {totals.customers} customer{'s' if totals.customers != 1 else ''},"
        f" {totals.shipment_lines} shipment line{'s' if totals.shipment_lines != 1 else ''}"
        + (" [yellow](shipments truncated)[/]" if totals.shipments_truncated else "")
    )
    return table


def recall_panel(recall: RecallView) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column()
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
    for name, value in rows:
        table.add_row(name, value)
    return Panel(table, title="Recall", expand=False)


def recall_lots_table(recall: RecallView) -> Table:
    codes = {lot.lot_id: lot.lot_code for lot in recall.affected_lots}
    table = table_with("Affected lots", ("lot code", "SKU", "supplier", "why"))
    for lot in recall.affected_lots:
        why = (
            f"made from {codes.get(lot.via_lot_id, str(lot.via_lot_id))}"
            if lot.via_lot_id
            else "in scope"
        )
        table.add_row(
            escape(lot.lot_code), escape(lot.sku), escape(lot.supplier_id or "–"), escape(why)
        )
    return table


def recall_customers_table(
    customers: Sequence[AffectedCustomer], *, title: str = "Affected customers"
) -> Table:
    table = table_with(
        title, ("customer", "name", "email", "phone", "lots", "quantity", "shipments")
    )
    for customer in customers:
        quantities: dict[str, Decimal] = {}
        for shipment in customer.shipments:
            quantities[shipment.uom] = quantities.get(shipment.uom, Decimal(0)) + shipment.quantity
        late = sum(1 for shipment in customer.shipments if shipment.late)
        table.add_row(
            escape(customer.customer_id),
            escape(customer.name or "–"),
            escape(customer.email or "–"),
            escape(customer.phone or "–"),
            escape(", ".join(sorted({s.lot_code for s in customer.shipments}))),
            ", ".join(f"{quantity} {uom}" for uom, quantity in quantities.items()),
            f"{len(customer.shipments)}" + (f" ({late} late)" if late else ""),
        )
    return table


def stock_table(lots: Sequence[StockLot], *, title: str, today: date | None = None) -> Table:
    today = today or datetime.now(UTC).date()
    columns = ("expires", "days", "SKU", "lot code", "location", "on hand", "reserved")
    table = table_with(title, (*columns, "available", "status"))
    for lot in lots:
        days = (lot.expiry_date - today).days if lot.expiry_date else None
        status = lot.status.value
        if lot.status.value != "available":
            status = f"[yellow]{status}[/]"
        table.add_row(
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
    return table


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
    table = table_with(
        title, ("entry", "when", "error", "message", "source", "consumer group", "key")
    )
    for letter in letters:
        source = "{}/{}@{}".format(
            *(part if part is not None else "?" for part in letter.source_position)
        )
        message = letter.error_message or ""
        table.add_row(
            f"{letter.topic} {letter.partition}:{letter.offset}",
            datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            escape(letter.error_type or "?"),
            escape(message if len(message) <= 160 else f"{message[:160]}…"),
            escape(source),
            escape(letter.consumer_group or "?"),
            escape(_text(letter.key)),
        )
    return table


def _text(raw: bytes | None) -> str:
    return "–" if raw is None else raw.decode("utf-8", errors="replace")


def dead_letter_document(letter: DeadLetter) -> dict[str, Any]:
    return {
        "entry": {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset},
        "timestamp": datetime.fromtimestamp(letter.timestamp_ms / 1000, UTC).isoformat(),
        "error_type": letter.error_type,
        "error_message": letter.error_message,
        "source": {
            "topic": letter.source_topic,
            "partition": letter.source_partition,
            "offset": letter.source_offset,
        },
        "consumer_group": letter.consumer_group,
        "key": None if letter.key is None else _text(letter.key),
        "headers": {name: _text(raw) for name, raw in letter.headers},
        "value": _text(letter.value),
    }


# ---------------------------------------------------------------------- trace


@app.command()
def trace(
    lot_code: Annotated[str, typer.Argument(help="The lot code, as printed on the label.")],
    sku: Annotated[
        str | None, typer.Option(help="The SKU, when products of several SKUs share the code.")
    ] = None,
    output: Annotated[
        TraceFormat,
        typer.Option(
            "--format",
            "-f",
            help="table: both directions and the genealogy as a tree; mermaid: the genealogy"
            " flowchart (the lot highlighted); json: lot, backward and forward traces.",
        ),
    ] = TraceFormat.TABLE,
    receiving_url: ReceivingUrlOption = DEFAULT_URLS["receiving"],
    recall_url: RecallUrlOption = DEFAULT_URLS["recall"],
    api_key: ApiKeyOption = None,
) -> None:
    """Follow a lot back to its suppliers and forward to its customers.

    Backward: the lot's receipts, its input lots (to the roots), their suppliers and purchase
    orders. Forward: every lot made from it, at any depth, and every shipment of any of them.
    """
    target = connection(api_key, receiving=receiving_url, recall=recall_url)
    run_against_platform(_trace(target, lot_code, sku, output))


async def _trace(target: Connection, lot_code: str, sku: str | None, output: TraceFormat) -> None:
    async with LottraceClient(target) as api:
        try:
            lot = await api.lot_by_code(lot_code, sku=sku)
        except AmbiguousLotCode as error:
            fail(str(error), hint=f"add --sku, one of: {', '.join(error.skus)}", code=2)
        except LotNotFound as error:
            fail(str(error))
        try:
            if output is TraceFormat.MERMAID:
                typer.echo(await api.genealogy(lot.lot_id), nl=False)
                return
            backward, forward = await asyncio.gather(
                api.trace_backward(lot.lot_id), api.trace_forward(lot.lot_id)
            )
        except ServiceError as error:
            if error.service == "recall" and error.status == 404:
                fail(
                    f"recall does not know lot {lot.lot_code} ({lot.lot_id}) yet",
                    hint="it learns lots from goods-received: see recall's consumer lag"
                    " (docs/operations.md#consumer-lag)",
                )
            raise
    if output is TraceFormat.JSON:
        write_json(
            {
                "lot": lot.model_dump(mode="json"),
                "backward": backward.model_dump(mode="json"),
                "forward": forward.model_dump(mode="json"),
            }
        )
        return
    console = stdout()
    console.print(lot_panel(lot))
    console.print(genealogy_tree(backward, forward))
    console.print(backward_table(backward))
    console.print(shipments_table(forward))


# ---------------------------------------------------------------------- recall


@recall_app.command("issue")
def recall_issue(
    reason: Annotated[
        str, typer.Option(help="What was found, and by whom: it goes into every notice.")
    ],
    lot_code: Annotated[
        list[str] | None,
        typer.Option("--lot-code", help="A lot code in scope; repeat for several."),
    ] = None,
    lot_id: Annotated[
        list[UUID] | None, typer.Option("--lot-id", help="A lot id in scope; repeat for several.")
    ] = None,
    sku: Annotated[
        str | None,
        typer.Option(help="With lot codes: their SKU. Alone: every lot of the SKU."),
    ] = None,
    supplier: Annotated[
        str | None, typer.Option(help="Every lot from this supplier (its supplier_id).")
    ] = None,
    received_from: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only lots first received on or after this day."),
    ] = None,
    received_to: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only lots first received on or before this day."),
    ] = None,
    classification: Annotated[
        Classification,
        typer.Option(
            help="I: may cause serious harm; II: may cause temporary harm; III: unlikely to harm."
        ),
    ] = Classification.II,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before issuing (on a terminal).")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    recall_url: RecallUrlOption = DEFAULT_URLS["recall"],
    api_key: ApiKeyOption = None,
) -> None:
    """Issue a recall of lots by code, id, SKU or supplier.

    The scope follows genealogy: lots made from a recalled lot are recalled too. Every affected
    customer gets a notice on `recall-issued`; inventory and fulfillment block the lots.
    """
    request = recall_request(
        reason=reason,
        classification=classification.value,
        lot_codes=lot_code or [],
        lot_ids=lot_id or [],
        sku=sku,
        supplier_id=supplier,
        received_from=received_from.date() if received_from else None,
        received_to=received_to.date() if received_to else None,
    )
    if not yes and sys.stdin.isatty():
        scope = json.dumps(request.scope.model_dump(mode="json", exclude_none=True))
        typer.confirm(
            f"Issue a class {request.classification} recall of {scope}? Every affected customer"
            " is notified",
            abort=True,
        )
    target = connection(api_key, recall=recall_url)

    async def issue() -> None:
        async with LottraceClient(target) as api:
            accepted = await api.issue_recall(request)
        if output is OutputFormat.JSON:
            write_json(accepted.model_dump(mode="json"))
            return
        stdout().print(
            f"recall [bold]{accepted.recall_id}[/] issued: {accepted.affected_lots} lots,"
            f" {accepted.affected_customer_count} customers, {accepted.shipped_quantity} shipped."
            f"\nfollow it: lottrace recall status {accepted.recall_id} --wait"
        )

    run_against_platform(issue())


def recall_request(
    *,
    reason: str,
    classification: str,
    lot_codes: Sequence[str],
    lot_ids: Sequence[UUID],
    sku: str | None,
    supplier_id: str | None,
    received_from: date | None,
    received_to: date | None,
) -> RecallRequest:
    """The request `recall issue` sends; bad input exits with status 2, naming the problem."""
    if not (lot_codes or lot_ids or sku or supplier_id):
        fail("a recall needs a scope: give --lot-code, --lot-id, --sku or --supplier", code=2)
    if not reason.strip():
        fail("--reason is empty: say what was found; it goes into every notice", code=2)
    try:
        return RecallRequest(
            reason=reason,
            classification=classification,
            scope=RecallScope(
                lot_ids=list(lot_ids) or None,
                lot_codes=list(lot_codes) or None,
                sku=sku,
                supplier_id=supplier_id,
                received_from=received_from,
                received_to=received_to,
            ),
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'scope'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        fail(f"invalid recall: {problems}", code=2)


@recall_app.command("status")
def recall_status(
    recall_id: Annotated[str, typer.Argument(help="The recall id `recall issue` printed.")],
    wait: Annotated[
        bool, typer.Option(help="Wait until every affected customer has been notified.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=1, help="How long --wait waits, in seconds.")] = 120,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    recall_url: RecallUrlOption = DEFAULT_URLS["recall"],
    api_key: ApiKeyOption = None,
) -> None:
    """A recall's status, its affected lots, and how far its customer notices are."""
    target = connection(api_key, recall=recall_url)

    async def status() -> RecallView:
        async with LottraceClient(target) as api:
            recall = await api.recall(recall_id, customers_limit=0)
            deadline = asyncio.get_running_loop().time() + timeout
            while wait and not recall.notices_complete:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(
                        f"recall {recall_id}: {recall.notified_customers} of"
                        f" {recall.affected_customer_count} customers notified after {timeout:.0f}s"
                    )
                await asyncio.sleep(0.5)
                recall = await api.recall(recall_id, customers_limit=0)
            return recall

    recall = run_against_platform(status())
    if output is OutputFormat.JSON:
        write_json(recall.model_dump(mode="json", exclude={"customers"}))
        return
    console = stdout()
    console.print(recall_panel(recall))
    console.print(recall_lots_table(recall))


@recall_app.command("customers")
def recall_customers(
    recall_id: Annotated[str, typer.Argument(help="The recall id.")],
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            allow_dash=True,
            help="Write every affected customer and shipment as CSV to this file ('-': stdout)"
            " instead of the table.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, help="At most this many customers in the table.")
    ] = 1000,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    recall_url: RecallUrlOption = DEFAULT_URLS["recall"],
    api_key: ApiKeyOption = None,
) -> None:
    """Who received the recalled lots, with what they received: the list to call down.

    Lots made from a recalled lot count too, and so do shipments that became known after the
    recall was issued (late).
    """
    target = connection(api_key, recall=recall_url)
    if csv_file is not None:
        run_against_platform(_export_customers(target, recall_id, csv_file))
        return

    async def first_customers() -> tuple[RecallView, list[AffectedCustomer]]:
        """The recall and up to `limit` of its customers, a page (at most 10,000) at a time."""
        async with LottraceClient(target) as api:
            found: list[AffectedCustomer] = []
            while True:
                wanted = min(limit - len(found), 10_000)
                recall = await api.recall(
                    recall_id, customers_limit=wanted, customers_offset=len(found)
                )
                found += recall.customers
                if len(recall.customers) < wanted or len(found) >= limit:
                    return recall, found

    recall, found = run_against_platform(first_customers())
    if output is OutputFormat.JSON:
        write_json([customer.model_dump(mode="json") for customer in found])
        return
    table = recall_customers_table(found, title=f"Customers affected by recall {recall_id}")
    table.caption = (
        f"{recall.affected_customer_count} affected at issue, {len(found)} shown"
        + (" (late shipments included)" if recall.late_notices else "")
        + ("; --limit to see more, --csv for all" if len(found) >= limit else "")
    )
    stdout().print(table)


async def _export_customers(target: Connection, recall_id: str, destination: Path) -> None:
    async with LottraceClient(target) as api:
        if str(destination) == "-":
            typer.echo(await api.recall_customers_csv(recall_id), nl=False)
            return
        rows = await api.write_recall_customers_csv(recall_id, destination)
    Console(stderr=True, highlight=False).print(
        f"{rows} rows written to {escape(str(destination))}"
    )


# ---------------------------------------------------------------------- lots


@lots_app.command("expiring")
def lots_expiring(
    within_days: Annotated[
        int, typer.Option(min=0, max=3650, help="Lots with stock expiring within this many days.")
    ] = 30,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    inventory_url: InventoryUrlOption = DEFAULT_URLS["inventory"],
    api_key: ApiKeyOption = None,
) -> None:
    """Lots with stock on hand that expire soon, soonest first (expired ones included)."""
    target = connection(api_key, inventory=inventory_url)

    async def expiring() -> list[StockLot]:
        async with LottraceClient(target) as api:
            return await api.expiring(within_days=within_days)

    lots = run_against_platform(expiring())
    if output is OutputFormat.JSON:
        write_json([lot.model_dump(mode="json") for lot in lots])
        return
    stdout().print(stock_table(lots, title=f"Lots expiring within {within_days} days"))


# ---------------------------------------------------------------------- scan


GROUP_SEPARATOR_SPELLINGS = ("<GS>", "<gs>", "\\x1d", "\\x1D", "\\u001d")


def with_group_separators(barcode: str) -> str:
    """A barcode typed on a command line, where FNC1 (ASCII 29) cannot be typed: `<GS>` or
    `\\x1d` stand for it."""
    for spelling in GROUP_SEPARATOR_SPELLINGS:
        barcode = barcode.replace(spelling, "\x1d")
    return barcode


@app.command()
def scan(
    barcode: Annotated[
        str,
        typer.Argument(
            help="A GS1 element string as a scanner sends it (`]C1...`, FNC1 typed as <GS>)"
            " or as printed, `(01)...(17)...(10)...`; '-' reads one line from stdin."
        ),
    ],
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
) -> None:
    """Read a GS1 barcode as receiving and fulfillment read it: GTIN, lot, dates, count.

    A barcode that cannot be read exits with status 2, naming the element to look at.
    """
    text = sys.stdin.readline().rstrip("\r\n") if barcode == "-" else barcode
    try:
        parsed = parse_gs1(with_group_separators(text))
    except Gs1Error as error:
        fail(f"{error.element}: {error}", code=2)
    if output is OutputFormat.JSON:
        document = {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in vars(parsed).items()
            if name != "raw" and value is not None
        }
        write_json({**document, "human_readable": parsed.as_human_readable()})
        return
    stdout().print(scan_table(parsed))


# ---------------------------------------------------------------------- dead letters


def _topics(topic: Sequence[str] | None) -> list[str]:
    return (
        [dead_letter_topic_of(name) for name in topic] if topic else [spec.dlq for spec in TOPICS]
    )


@dlq_app.command("list")
def dlq_list(
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            "-t",
            help="A topic (or its .dlq); repeat for several. Default: every topic of the contract.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show the newest N entries.")] = 50,
    output: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.TABLE,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """What the consumers refused, and why.

    Each entry: the error type and message, the source topic, partition and offset, the
    consumer group that refused it, the key. Reads without joining a consumer group.
    """
    topics = _topics(topic)
    letters, missing = run_against_platform(read_dead_letters(kafka_settings(bootstrap), topics))
    letters.sort(
        key=lambda letter: (letter.timestamp_ms, letter.topic, letter.partition, letter.offset)
    )
    shown = letters[-limit:]
    if output is OutputFormat.JSON:
        write_json([dead_letter_document(letter) for letter in shown])
        return
    console = stdout()
    for name in missing:
        console.print(f"[yellow]{escape(name)} does not exist[/]")
    if not letters:
        console.print(
            f"no dead letters in {', '.join(t for t in topics if t not in missing) or '–'}"
        )
        return
    table = dead_letters_table(shown, title="Dead letters")
    table.caption = (
        f"{len(letters)} entr{'ies' if len(letters) != 1 else 'y'}"
        + (f", the newest {len(shown)} shown (--limit)" if len(shown) < len(letters) else "")
        + ". Replay one after the fix: lottrace dlq replay --topic T --partition P --offset N"
    )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[
        str,
        typer.Option(
            "--topic", "-t", help="The topic (or its .dlq) whose dead letters to send again."
        ),
    ],
    offset: Annotated[
        int | None,
        typer.Option(
            min=0, help="The entry's offset in the dead-letter topic (`dlq list`, entry P:N)."
        ),
    ] = None,
    partition: Annotated[
        int | None,
        typer.Option(min=0, help="The entry's partition; needed when the offset is in several."),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Every entry of the topic's DLQ, each record once.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Send dead letters back to their source topic, once what refused them is fixed.

    The original value, key and headers go to the partition they came from. Consumers that had
    applied the event skip it (inbox); one that refuses it again dead-letters it again.
    """
    if (offset is None) == (not replay_all):
        fail("give --offset N (one entry) or --all", code=2)
    if partition is not None and offset is None:
        fail("--partition goes with --offset", code=2)
    settings = kafka_settings(bootstrap)
    dlq_topic = dead_letter_topic_of(topic)

    async def replay() -> tuple[list[ReplayMessage], list[str]]:
        letters, missing = await read_dead_letters(settings, [dlq_topic])
        if missing:
            fail(f"{dlq_topic} does not exist")
        chosen = select_dead_letters(
            letters, offset=offset, partition=partition, dlq_topic=dlq_topic
        )
        messages: list[ReplayMessage] = []
        refused: list[str] = []
        for letter in chosen:
            try:
                messages.append(replay_message(letter))
            except NotReplayable as error:
                refused.append(str(error))
        if messages and not dry_run:
            await publish_replays(settings, messages)
        return messages, refused

    messages, refused = run_against_platform(replay())
    console = stdout()
    if messages:
        table = dead_letters_table(
            [m.dead_letter for m in messages], title="Replayed" if not dry_run else "Would replay"
        )
        table.caption = (
            "dry run: nothing sent"
            if dry_run
            else f"{len(messages)} record{'s' if len(messages) != 1 else ''} sent to"
            f" {', '.join(sorted({m.topic for m in messages}))}"
        )
        console.print(table)
    elif not refused:
        console.print(f"nothing to replay in {dlq_topic}")
    for reason in refused:
        Console(stderr=True).print(f"[yellow]not replayed:[/] {escape(reason)}")
    if refused:
        raise typer.Exit(1)


def select_dead_letters(
    letters: Sequence[DeadLetter], *, offset: int | None, partition: int | None, dlq_topic: str
) -> list[DeadLetter]:
    """The entries `dlq replay` sends: one by offset (and partition), or each record once."""
    if offset is None:
        return distinct_records(letters)
    matching = [
        letter
        for letter in letters
        if letter.offset == offset and (partition is None or letter.partition == partition)
    ]
    if not matching:
        where = f" partition {partition}" if partition is not None else ""
        fail(f"{dlq_topic} has no entry at{where} offset {offset}: see `lottrace dlq list`")
    if len(matching) > 1:
        partitions = ", ".join(str(letter.partition) for letter in matching)
        fail(
            f"offset {offset} is in partitions {partitions} of {dlq_topic}: give --partition",
            code=2,
        )
    return matching


# ---------------------------------------------------------------------- demo


class ServiceName(StrEnum):
    RECEIVING = "receiving"
    INVENTORY = "inventory"
    FULFILLMENT = "fulfillment"
    RECALL = "recall"


@app.command()
def replay(
    service: Annotated[
        ServiceName, typer.Argument(help="The service whose projection to rebuild.")
    ],
    switch: Annotated[
        bool,
        typer.Option(
            "--switch",
            help="Finish the rebuild and make it the service's projection. The service must be"
            " stopped (scaled to 0); start it again afterwards.",
        ),
    ] = False,
    restart: Annotated[
        bool, typer.Option(help="Drop an unfinished rebuild and start again from offset 0.")
    ] = False,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            show_default=False,
            rich_help_panel=CONNECTION_PANEL,
            help="The service's PostgreSQL (default: what the service reads, e.g."
            " RECALL_DATABASE_URL or DATABASE_URL).",
        ),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Rebuild a service's projection from its topics, from offset 0, into a fresh schema.

    Without --switch the rebuild runs beside the live service (which keeps serving) up to what
    it has applied, and can be run again to catch up. Then stop the service and run with
    --switch: the rest of what it applied is rebuilt, the tables the service owns (recalls) and
    its unpublished events are carried over, and the schemas are swapped in one transaction.
    Started again, the service goes on from its consumer group's offsets. The old schema is
    kept as lottrace_replaced_<time> (drop it, or rename it back to roll back).
    """
    import importlib

    import asyncpg

    from shared.runtime.replay import Replay, ReplayRefused

    app_module = importlib.import_module(f"services.{service.value}.app")
    settings = app_module.Settings()
    plan = app_module.replay_plan(settings)
    url = database_url or settings.database_url.get_secret_value()
    console = stdout()

    def progress(phase: str, applied: int, left: int) -> None:
        status.update(f"{phase}: {applied:,} records applied, {left:,} to go")

    try:
        replay_run = Replay(plan, url, kafka_settings(bootstrap), on_progress=progress)
    except ReplayRefused as refused:
        fail(f"cannot replay {service.value}: {refused}")
    with console.status(f"rebuilding {service.value}…") as status:
        try:
            report = run_against_platform(
                replay_run.switch() if switch else replay_run.build(restart=restart)
            )
        except ReplayRefused as refused:
            fail(str(refused))
        except (OSError, asyncpg.PostgresError) as error:
            fail(f"PostgreSQL: {error}", hint="the URL comes from --database-url")
    console.print(
        f"{service.value}: {report.applied:,} records applied in {report.seconds:.1f} s"
        f" into schema {report.schema}"
    )
    if not report.switched:
        console.print(
            f"next: stop {service.value}, then `lottrace replay {service.value} --switch`"
        )
        return
    table = Table(title="rows per table")
    table.add_column("table")
    table.add_column("before", justify="right")
    table.add_column("rebuilt", justify="right")
    for name, (before, rebuilt) in report.table_rows.items():
        table.add_row(name, f"{before:,}", f"{rebuilt:,}")
    console.print(table)
    console.print(
        f"switched: {service.value} reads the rebuilt projection once started again. The old"
        f" one is schema"
        f" {report.replaced_schema}: drop it once satisfied"
        f" (DROP SCHEMA {report.replaced_schema} CASCADE). Start {service.value} again."
    )


@app.command()
def demo(
    output_dir: Annotated[
        Path, typer.Option(help="Where the genealogy picture and the customers CSV go.")
    ] = Path("demo-output"),
    wait_seconds: Annotated[
        float, typer.Option(min=1, help="How long each step waits for the services to catch up.")
    ] = 60,
    receiving_url: ReceivingUrlOption = DEFAULT_URLS["receiving"],
    inventory_url: InventoryUrlOption = DEFAULT_URLS["inventory"],
    fulfillment_url: FulfillmentUrlOption = DEFAULT_URLS["fulfillment"],
    recall_url: RecallUrlOption = DEFAULT_URLS["recall"],
    api_key: ApiKeyOption = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Tell the orange-juice story on a running platform (`make run`).

    Lots received (one by a GS1 scan, one pressed from a farm's oranges), orders from upstream,
    shipments, a customer complaint, the trace, the recall, the affected-customer list; the
    lot's genealogy and the customers CSV are written to the output folder. Each run makes new
    ids, so it can run again on the same platform.
    """
    from lottrace.demo import DemoSettings, run_demo

    settings = DemoSettings(
        connection=connection(
            api_key,
            receiving=receiving_url,
            inventory=inventory_url,
            fulfillment=fulfillment_url,
            recall=recall_url,
        ),
        kafka=kafka_settings(bootstrap),
        output_dir=output_dir,
        wait_seconds=wait_seconds,
    )
    run_against_platform(run_demo(settings, stdout()))


# ---------------------------------------------------------------------- check, backup, restore


def _database_option(service: str) -> Any:
    return typer.Option(
        f"--{service}-database-url",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help=f"PostgreSQL URL of {service} (default: --postgres, else what {service} reads:"
        f" {service.upper()}_DATABASE_URL, DATABASE_URL, or lottrace_{service} on"
        " 127.0.0.1:5432 as under `make run`).",
    )


PostgresOption = Annotated[
    str | None,
    typer.Option(
        "--postgres",
        show_default=False,
        rich_help_panel=CONNECTION_PANEL,
        help="A PostgreSQL server URL holding the databases lottrace_<service>.",
    ),
]
ReceivingDatabaseOption = Annotated[str | None, _database_option("receiving")]
InventoryDatabaseOption = Annotated[str | None, _database_option("inventory")]
FulfillmentDatabaseOption = Annotated[str | None, _database_option("fulfillment")]
RecallDatabaseOption = Annotated[str | None, _database_option("recall")]


def database_urls(postgres: str | None, **given: str | None) -> dict[str, str]:
    from lottrace.check.reads import service_database_urls

    try:
        return service_database_urls(given, server=postgres)
    except ValidationError as error:
        fail(f"service settings: {error}", code=2)


@app.command()
def check(
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Wait up to this long for the outboxes to empty and the consumer lag to reach 0"
            " before comparing.",
        ),
    ] = 0,
    stuck_after: Annotated[
        float,
        typer.Option(min=0, metavar="SECONDS", help="An outbox row older than this is stuck."),
    ] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    postgres: PostgresOption = None,
    receiving_database_url: ReceivingDatabaseOption = None,
    inventory_database_url: InventoryDatabaseOption = None,
    fulfillment_database_url: FulfillmentDatabaseOption = None,
    recall_database_url: RecallDatabaseOption = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Audit the services' projections against each other (docs/operations.md#consistency-check).

    Lots in receiving, inventory and recall; shipments in fulfillment, inventory and recall;
    per lot, received = on hand + consumed + shipped - adjusted; unpublished outbox rows and
    consumer lag. Exit status: 0 consistent, 1 differences, 3 differences while work was in
    flight (run again with --wait), 4 a database or the brokers could not be read.
    """
    from lottrace.check.audit import CheckOptions, run_check
    from lottrace.check.reads import SourceUnreadable
    from lottrace.check.report import print_report, report_document, waiting_line

    options = CheckOptions(
        database_urls=database_urls(
            postgres,
            receiving=receiving_database_url,
            inventory=inventory_database_url,
            fulfillment=fulfillment_database_url,
            recall=recall_database_url,
        ),
        kafka=kafka_settings(bootstrap),
        wait_seconds=wait,
        stuck_after_seconds=stuck_after,
    )
    with Console(stderr=True).status("reading…") as status:
        try:
            report = asyncio.run(
                run_check(options, on_wait=lambda busy: status.update(waiting_line(busy)))
            )
        except SourceUnreadable as error:
            fail(str(error), code=4)
    if as_json:
        write_json(report_document(report))
    else:
        print_report(report, stdout())
    raise typer.Exit(report.exit_code)


PgBinOption = Annotated[
    Path | None,
    typer.Option(
        "--pg-bin",
        show_default=False,
        file_okay=False,
        help="Folder of pg_dump and pg_restore (default: the embedded PostgreSQL's, as under"
        " `make run`); as new as the server's.",
    ),
]


@app.command()
def backup(
    archive: Annotated[Path, typer.Argument(help="The archive to write (a tar).")],
    pg_bin: PgBinOption = None,
    postgres: PostgresOption = None,
    receiving_database_url: ReceivingDatabaseOption = None,
    inventory_database_url: InventoryDatabaseOption = None,
    fulfillment_database_url: FulfillmentDatabaseOption = None,
    recall_database_url: RecallDatabaseOption = None,
) -> None:
    """Dump every service database into one archive, with a manifest (docs/operations.md)."""
    from lottrace.backup import BackupError, PgTools
    from lottrace.backup import backup as make_backup

    urls = database_urls(
        postgres,
        receiving=receiving_database_url,
        inventory=inventory_database_url,
        fulfillment=fulfillment_database_url,
        recall=recall_database_url,
    )
    try:
        manifest = asyncio.run(make_backup(urls, archive, PgTools.choose(pg_bin)))
    except BackupError as error:
        fail(str(error))
    sizes = ", ".join(f"{d.service} {d.size:,} bytes" for d in manifest.databases)
    stdout().print(f"{escape(str(archive))}: {sizes}")


@app.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="An archive `lottrace backup` wrote.")],
    force: Annotated[
        bool, typer.Option(help="Replace databases that hold data (what they hold is lost).")
    ] = False,
    pg_bin: PgBinOption = None,
    postgres: PostgresOption = None,
    receiving_database_url: ReceivingDatabaseOption = None,
    inventory_database_url: InventoryDatabaseOption = None,
    fulfillment_database_url: FulfillmentDatabaseOption = None,
    recall_database_url: RecallDatabaseOption = None,
) -> None:
    """Restore every service database from an archive; stop the services first.

    The manifest and each dump's checksum are checked before any database is touched.
    Databases holding rows are refused unless --force. Consumer positions: see
    docs/operations.md#restoring-after-a-database-loss. Exit status: 1 refused or failed,
    2 not a (readable) lottrace backup.
    """
    from lottrace.backup import ArchiveInvalid, BackupError, PgTools
    from lottrace.backup import restore as run_restore

    urls = database_urls(
        postgres,
        receiving=receiving_database_url,
        inventory=inventory_database_url,
        fulfillment=fulfillment_database_url,
        recall=recall_database_url,
    )
    try:
        manifest = asyncio.run(run_restore(archive, urls, PgTools.choose(pg_bin), force=force))
    except ArchiveInvalid as error:
        fail(str(error), code=2)
    except BackupError as error:
        fail(str(error))
    stdout().print(
        f"restored {', '.join(d.service for d in manifest.databases)} as of"
        f" {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC (lottrace {manifest.lottrace_version})."
        " Next: start the services; see docs/operations.md for consumer positions."
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
