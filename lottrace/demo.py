"""`lottrace demo` (`make demo`): the orange-juice story, told step by step against a running
platform through its public doors only (HTTP and the `order-placed` topic).

1. The product OJ-1L is put with its GTIN; oranges (KG) arrive from a farm.
2. Juice lots come in: one pressed in-house from the oranges (a production receipt with
   `inputs`), one delivered by a co-packer and received by scanning its GS1-128 label
   (`POST /receipts/scan`), two more from another supplier.
3. Orders from five customers arrive on `order-placed` as CloudEvents, one after another;
   inventory allocates them FEFO, fulfillment ships them (one order scan-verified).
4. A customer complains about the juice of one lot; its trace is shown both ways; the lot is
   recalled; once every notice is out, the affected customers are listed, and the lot's
   genealogy (Mermaid) and the customers CSV are written to the output folder.

Every run makes new receipt, order, shipment and lot ids, so it can be run again on the same
platform. Who received the recalled lot is read from this run's shipments, never assumed: stock
left by an earlier run may be allocated first (FEFO), and the story still holds. Waits poll the
services with a deadline; nothing sleeps blindly.
"""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from biip.checksums import gs1_standard_check_digit
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from lottrace.client import (
    SERVICES,
    Connection,
    LottraceClient,
    ServiceError,
    kafka_producer,
)
from lottrace.render import (
    backward_table,
    genealogy_tree,
    lot_panel,
    recall_customers_table,
    recall_lots_table,
    recall_panel,
    scan_table,
    shipments_table,
    stock_table,
    table_with,
)
from services.fulfillment.schemas import OrderView, ShipmentRequest, ShipmentView
from services.recall.schemas import RecallRequest, RecallView
from services.receiving.schemas import (
    InputRef,
    ProductRequest,
    ReceiptRequest,
    ReceiptView,
    ScanReceiptRequest,
)
from shared.contracts.envelope import encode
from shared.contracts.events import OrderLine, OrderPlaced, RecallScope
from shared.contracts.types import Address, Customer, Money, Supplier
from shared.gs1 import parse_gs1
from shared.runtime.settings import KafkaSettings

T = TypeVar("T")

JUICE_SKU = "OJ-1L"
ORANGES_SKU = "ORANGES-VALENCIA"
_GTIN_BODY = "0950110153100"  # GS1's example company prefix 9501101, item 53100
JUICE_GTIN = f"{_GTIN_BODY}{gs1_standard_check_digit(_GTIN_BODY)}"
ORDER_SOURCE = "/lottrace/demo/oms"
GS = "\x1d"  # FNC1 as a scanner transmits it

FARM = Supplier(supplier_id="FARM-SOL", name="Finca del Sol")
CO_PACKER = Supplier(supplier_id="SUNPRESS", name="SunPress Co-Packing")
GROVE = Supplier(supplier_id="GROVE", name="Grove Farms")


@dataclass(frozen=True)
class DemoCustomer:
    customer: Customer
    cases: int  # what the customer orders, in EA of OJ-1L


CUSTOMERS: tuple[DemoCustomer, ...] = (
    DemoCustomer(
        Customer(
            customer_id="CUST-CORNER-DELI",
            name="Corner Deli",
            email="orders@cornerdeli.example",
            phone="+1 555 0101",
            address=Address(line1="12 Elm St", city="Springfield", postal_code="01101"),
        ),
        18,
    ),
    DemoCustomer(
        Customer(
            customer_id="CUST-GREEN-BASKET",
            name="Green Basket Grocers",
            email="buyer@greenbasket.example",
            phone="+1 555 0102",
            address=Address(line1="400 Market Ave", city="Springfield", postal_code="01103"),
        ),
        30,
    ),
    DemoCustomer(
        Customer(
            customer_id="CUST-HARBOR-CAFE",
            name="Harbor Café",
            email="hello@harborcafe.example",
            phone="+1 555 0103",
            address=Address(line1="3 Pier Rd", city="Shelbyville", postal_code="01205"),
        ),
        24,
    ),
    DemoCustomer(
        Customer(
            customer_id="CUST-HILLTOP-SCHOOL",
            name="Hilltop School District",
            email="kitchen@hilltop.example",
            phone="+1 555 0104",
            address=Address(line1="1 School Ln", city="Capital City", postal_code="01301"),
        ),
        30,
    ),
    DemoCustomer(
        Customer(
            customer_id="CUST-SUNRISE-HOTEL",
            name="Sunrise Hotel",
            email="purchasing@sunrisehotel.example",
            phone="+1 555 0105",
            address=Address(line1="88 Ocean Blvd", city="Shelbyville", postal_code="01207"),
        ),
        36,
    ),
)


def new_run_id() -> str:
    return uuid.uuid4().hex[:6].upper()


@dataclass(frozen=True)
class DemoSettings:
    connection: Connection
    kafka: KafkaSettings
    output_dir: Path = Path("demo-output")
    wait_seconds: float = 60.0
    run_id: str = field(default_factory=new_run_id)


@dataclass(frozen=True)
class DemoOutcome:
    run_id: str
    lots: dict[str, ReceiptView]  # by role: oranges, pressed, scanned, grove-1, grove-2
    recalled_lot_code: str
    recalled_lot_id: UUID
    complainant: str
    recall_id: str
    received_recalled_lot: frozenset[str]  # customers this run's shipments gave the lot
    affected_customers: frozenset[str]  # customers the recall lists
    notified_customers: int
    genealogy_file: Path
    customers_csv: Path


class NotYet(Exception):
    """What is awaited is not there yet; the message says what is there instead."""


async def eventually(
    probe: Callable[[], Awaitable[T]], *, what: str, timeout: float, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns instead of raising NotYet (or a 404/503 of a service that
    has not caught up), or raise TimeoutError naming what was awaited and the last state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await probe()
        except NotYet as error:
            last = str(error)
        except ServiceError as error:
            if error.status not in (404, 503):
                raise
            last = str(error)
        if loop.time() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s (last seen: {last})")
        await asyncio.sleep(interval)


def gs1_label(
    *,
    gtin: str,
    lot_code: str,
    expiry: date | None = None,
    production: date | None = None,
    count: int | None = None,
) -> str:
    """A GS1-128 label as a scanner transmits it: `]C1`, fixed-length elements first, then
    the lot, then FNC1 (ASCII 29) before the count."""
    parts = ["]C1", f"01{gtin}"]
    if production is not None:
        parts.append(f"11{production:%y%m%d}")
    if expiry is not None:
        parts.append(f"17{expiry:%y%m%d}")
    parts.append(f"10{lot_code}")
    if count is not None:
        parts.append(f"{GS}37{count}")
    return "".join(parts)


def printable(barcode: str) -> str:
    return barcode.replace(GS, "<GS>")


def file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


class Story:
    """The demo's state as it unfolds, and how each step is told."""

    def __init__(self, settings: DemoSettings, api: LottraceClient, console: Console) -> None:
        self.settings = settings
        self.api = api
        self.console = console
        self.run = settings.run_id
        self.today = datetime.now(UTC).date()
        self.step = 0
        self.lots: dict[str, ReceiptView] = {}
        self.orders: dict[str, DemoCustomer] = {}
        self.allocations: dict[str, OrderView] = {}
        self.shipments: list[ShipmentView] = []

    def chapter(self, title: str) -> None:
        self.step += 1
        self.console.print()
        self.console.rule(f"[bold]{self.step}. {title}", align="left")

    def say(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    async def wait(self, probe: Callable[[], Awaitable[T]], what: str) -> T:
        with self.console.status(f"waiting: {what}…"):
            return await eventually(probe, what=what, timeout=self.settings.wait_seconds)

    # ------------------------------------------------------------------ the steps

    async def platform_is_ready(self) -> None:
        self.chapter("The platform")
        table = table_with("", ("service", "address", "ready"))

        async def all_ready() -> dict[str, dict[str, Any]]:
            reports: dict[str, dict[str, Any]] = {}
            for service in SERVICES:
                ready, checks = await self.api.ready(service)
                if not ready:
                    raise NotYet(f"{service}: {checks}")
                reports[service] = checks
            return reports

        await self.wait(all_ready, "every service ready (/readyz)")
        for service in SERVICES:
            table.add_row(service, self.settings.connection.urls.of(service), "[green]yes[/]")
        self.console.print(table)
        self.say(f"Run [bold]{self.run}[/]: every id made below carries it.")

    async def products(self) -> None:
        self.chapter("Products")
        juice = await self.api.put_product(
            JUICE_SKU,
            ProductRequest(
                description="Orange juice 1 L, not from concentrate", gtins=[JUICE_GTIN]
            ),
        )
        await self.api.put_product(
            ORANGES_SKU, ProductRequest(description="Valencia oranges, fresh", uom="KG")
        )
        self.say(
            f"{JUICE_SKU} ({juice.description}) carries GTIN [bold]{JUICE_GTIN}[/]: a scanned"
            f" label with it is received as {JUICE_SKU}. {ORANGES_SKU} is counted in KG."
        )
        earlier = [lot for lot in await self.api.stock(sku=JUICE_SKU) if lot.available > 0]
        if earlier:
            units = sum((lot.available for lot in earlier), Decimal(0))
            self.say(
                f"[yellow]{units} EA of {JUICE_SKU} from earlier runs are in stock:[/] FEFO may"
                " allocate them first. Who received which lot is read from the shipments below."
            )

    async def receive_oranges(self) -> None:
        self.chapter("Oranges arrive from the farm")
        oranges = await self.api.receive(
            ReceiptRequest(
                receipt_id=f"DEMO-{self.run}-ORANGES",
                sku=ORANGES_SKU,
                quantity=Decimal(500),
                uom="KG",
                supplier=FARM,
                supplier_lot_code=f"FS-{self.run}",
                purchase_order=f"PO-{self.run}-1",
                production_date=self.today - timedelta(days=1),
                expiry_date=self.today + timedelta(days=21),
                unit_cost=Money(amount=Decimal("0.90"), currency="EUR"),
            )
        )
        self.lots["oranges"] = oranges
        self.say(
            f"Received {oranges.quantity} KG from {FARM.name} (their lot"
            f" {oranges.supplier_lot_code}, {oranges.purchase_order}) as lot"
            f" [bold]{oranges.lot_code}[/]."
        )

    async def receive_juice(self) -> None:
        self.chapter("Juice lots come in")
        await self._press_juice()
        await self._receive_scanned()
        await self._receive_from_grove()
        self._show_received()
        await self._show_stock()

    async def _press_juice(self) -> None:
        pressed = await self.api.receive(
            ReceiptRequest(
                receipt_id=f"DEMO-{self.run}-PRESSED",
                sku=JUICE_SKU,
                gtin=JUICE_GTIN,
                quantity=Decimal(60),
                production_date=self.today,
                expiry_date=self.today + timedelta(days=30),
                unit_cost=Money(amount=Decimal("1.10"), currency="EUR"),
                inputs=[
                    InputRef(lot_id=self.lots["oranges"].lot_id, quantity=Decimal(120), uom="KG")
                ],
            )
        )
        self.lots["pressed"] = pressed
        self.say(
            f"Pressed in-house: 120 KG of {self.lots['oranges'].lot_code} made lot"
            f" [bold]{pressed.lot_code}[/] ({pressed.quantity} EA) — the genealogy link."
        )

    async def _receive_scanned(self) -> None:
        barcode = gs1_label(
            gtin=JUICE_GTIN,
            lot_code=f"SP{self.run}",
            production=self.today - timedelta(days=3),
            expiry=self.today + timedelta(days=20),
            count=24,
        )
        self.say(
            f"The co-packer's pallet label, as the dock scanner sends it: {printable(barcode)}"
        )
        self.console.print(scan_table(parse_gs1(barcode)))
        scanned = await self.api.receive_scan(
            ScanReceiptRequest(
                barcode=barcode,
                receipt_id=f"DEMO-{self.run}-SCANNED",
                supplier=CO_PACKER,
                purchase_order=f"PO-{self.run}-2",
                unit_cost=Money(amount=Decimal("1.25"), currency="EUR"),
            )
        )
        self.lots["scanned"] = scanned
        self.say(
            f"POST /receipts/scan: the GTIN found {scanned.sku}, the label gave lot"
            f" [bold]{scanned.lot_code}[/], its dates and {scanned.quantity} EA."
        )

    async def _receive_from_grove(self) -> None:
        for number, (cases, days) in enumerate(((36, 45), (48, 60)), start=1):
            lot = await self.api.receive(
                ReceiptRequest(
                    receipt_id=f"DEMO-{self.run}-GROVE-{number}",
                    sku=JUICE_SKU,
                    gtin=JUICE_GTIN,
                    quantity=Decimal(cases),
                    supplier=GROVE,
                    supplier_lot_code=f"GF-{self.run}-{number}",
                    purchase_order=f"PO-{self.run}-3",
                    expiry_date=self.today + timedelta(days=days),
                    unit_cost=Money(amount=Decimal("1.05"), currency="EUR"),
                )
            )
            self.lots[f"grove-{number}"] = lot

    def _show_received(self) -> None:
        table = table_with(
            "Received in this run", ("lot code", "SKU", "quantity", "supplier", "expires", "how")
        )
        how = {
            "oranges": "purchase order",
            "pressed": "production: inputs = the oranges",
            "scanned": "GS1-128 scan",
            "grove-1": "purchase order",
            "grove-2": "purchase order",
        }
        for role, lot in self.lots.items():
            table.add_row(
                lot.lot_code,
                lot.sku,
                f"{lot.quantity} {lot.uom}",
                (lot.supplier.name or lot.supplier.supplier_id) if lot.supplier else "(in-house)",
                str(lot.expiry_date or "–"),
                how[role],
            )
        self.console.print(table)

    async def _show_stock(self) -> None:
        juice = [lot for role, lot in self.lots.items() if role != "oranges"]

        async def in_stock() -> None:
            for lot in juice:
                stock = await self.api.stock_lot(lot.lot_id)
                if stock.received < lot.quantity:
                    raise NotYet(f"inventory has {stock.received} of lot {lot.lot_code}")

        await self.wait(in_stock, "inventory has the juice lots (goods-received)")
        stock = [await self.api.stock_lot(lot.lot_id) for lot in juice]
        stock.sort(key=lambda lot: (lot.expiry_date or date.max, lot.lot_code))
        self.console.print(stock_table(stock, title="Inventory, first expired first out"))

    async def orders_arrive(self) -> None:
        self.chapter("Orders arrive from the upstream order system")
        self.say(
            "Each is a CloudEvent `lottrace.order-placed.v1` on `order-placed`, keyed by order id;"
            " each is published once the one before is allocated, so FEFO serves them in turn."
        )
        table = table_with("Allocated (FEFO)", ("order", "customer", "ordered", "allocated from"))
        async with kafka_producer(self.settings.kafka) as producer:
            for number, buyer in enumerate(CUSTOMERS, start=1):
                order_id = f"SO-{self.run}-{number}"
                event = OrderPlaced(
                    order_id=order_id,
                    customer=buyer.customer,
                    lines=[OrderLine(line_no=1, sku=JUICE_SKU, quantity=Decimal(buyer.cases))],
                    placed_at=datetime.now(UTC),
                )
                message = encode(event, source=ORDER_SOURCE)
                await producer.send_and_wait(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
                self.orders[order_id] = buyer
                order = await self.wait(
                    functools.partial(self._allocated, order_id),
                    f"fulfillment has order {order_id} allocated",
                )
                self.allocations[order_id] = order
                table.add_row(
                    order_id,
                    buyer.customer.name or buyer.customer.customer_id,
                    f"{buyer.cases} EA",
                    ", ".join(f"{a.lot_code} × {a.quantity}" for a in order.allocations),
                )
        self.console.print(table)

    async def _allocated(self, order_id: str) -> OrderView:
        order = await self.api.order(order_id)
        allocated = sum((a.quantity for a in order.allocations), Decimal(0))
        ordered = sum((line.ordered - line.shipped for line in order.lines), Decimal(0))
        if not order.lines or allocated < ordered:
            backordered = ", ".join(f"{b.quantity} {b.uom} ({b.reason})" for b in order.backordered)
            raise NotYet(f"{order_id} {order.status}: {allocated} allocated; {backordered or '-'}")
        return order

    async def ship(self) -> None:
        self.chapter("Shipping, lot by lot")
        scanned_order = next(
            (
                order_id
                for order_id, order in self.allocations.items()
                if len({a.lot_id for a in order.allocations}) > 1
            ),
            next(iter(self.allocations)),
        )
        for number, (order_id, order) in enumerate(self.allocations.items(), start=1):
            scans = None
            if order_id == scanned_order:
                # One case of each allocated lot, its label as the picker's scanner sends it.
                lots = {a.lot_code: a.expiry_date for a in order.allocations}
                scans = [
                    gs1_label(gtin=JUICE_GTIN, lot_code=code, expiry=expires)
                    for code, expires in lots.items()
                ]
            shipment = await self.api.ship(
                ShipmentRequest(
                    order_id=order_id, shipment_id=f"SH-{self.run}-{number}", scans=scans
                )
            )
            self.shipments.append(shipment)
            if scans:
                self.say(
                    f"{order_id} is picked case by case; the picker scans "
                    + " and ".join(printable(scan) for scan in scans)
                    + ": each scanned lot must be one allocated to the order."
                )
        table = table_with("Shipped", ("shipment", "order", "customer", "lots", "by"))
        for shipment in self.shipments:
            table.add_row(
                shipment.shipment_id,
                shipment.order_id,
                str(shipment.customer.get("name") or shipment.customer.get("customer_id")),
                ", ".join(f"{line.lot_code} × {line.quantity}" for line in shipment.lines),
                ("scan-verified, " if shipment.order_id == scanned_order else "")
                + str(shipment.shipped_by),
            )
        self.console.print(table)

    def customers_by_lot(self) -> dict[str, set[str]]:
        received: dict[str, set[str]] = defaultdict(set)
        for shipment in self.shipments:
            for line in shipment.lines:
                received[line.lot_code].add(str(shipment.customer["customer_id"]))
        return received

    def complaint(self) -> tuple[ReceiptView, DemoCustomer]:
        self.chapter("A customer complains")
        received = self.customers_by_lot()
        juice_roles = ("pressed", "scanned", "grove-1", "grove-2")
        lot = next(
            (self.lots[role] for role in juice_roles if received.get(self.lots[role].lot_code)),
            None,
        )
        if lot is None:
            raise RuntimeError("no juice lot of this run was shipped: nothing to complain about")
        customers = received[lot.lot_code]
        lots_of: dict[str, set[str]] = defaultdict(set)
        for code, ids in received.items():
            for customer_id in ids:
                lots_of[customer_id].add(code)
        by_id = {buyer.customer.customer_id: buyer for buyer in CUSTOMERS}
        complainant = by_id[
            min(customers, key=lambda customer_id: (len(lots_of[customer_id]), customer_id))
        ]
        name = complainant.customer.name
        self.console.print(
            Panel(
                f"{escape(name or '')} calls quality assurance: “Two bottles of the orange juice"
                " we got this week taste sour and fizzy.”\nThe bottle label: "
                f"{JUICE_SKU}, lot [bold]{escape(lot.lot_code)}[/], best before"
                f" {lot.expiry_date}.",
                title="Complaint",
                expand=False,
            )
        )
        return lot, complainant

    async def trace(self, lot: ReceiptView) -> None:
        self.chapter(f"Tracing lot {lot.lot_code} both ways")
        self.say(f"(what `lottrace trace {lot.lot_code} --sku {lot.sku}` shows)")
        lines = sum(
            1 for shipment in self.shipments for line in shipment.lines if line.lot_id == lot.lot_id
        )

        async def projected() -> None:
            forward = await self.api.trace_forward(lot.lot_id)
            if forward.totals.shipment_lines < lines:
                raise NotYet(f"recall knows {forward.totals.shipment_lines} of {lines} shipments")
            backward = await self.api.trace_backward(lot.lot_id)
            if len(lot.inputs) > len(backward.inputs):
                raise NotYet(f"recall knows {len(backward.inputs)} inputs of {lot.lot_code}")

        await self.wait(projected, "the recall service knows the lot's shipments and inputs")
        found = await self.api.lot_by_code(lot.lot_code, sku=lot.sku)
        backward, forward = await asyncio.gather(
            self.api.trace_backward(found.lot_id), self.api.trace_forward(found.lot_id)
        )
        self.console.print(lot_panel(found))
        self.console.print(genealogy_tree(backward, forward))
        self.console.print(backward_table(backward))
        self.console.print(shipments_table(forward))

    async def recall(self, lot: ReceiptView, complainant: DemoCustomer) -> RecallView:
        self.chapter(f"Recall of lot {lot.lot_code}")
        accepted = await self.api.issue_recall(
            RecallRequest(
                reason=f"Customer complaint ({complainant.customer.name}): sour, fizzy taste;"
                " possible fermentation",
                classification="II",
                scope=RecallScope(lot_codes=[lot.lot_code], sku=lot.sku),
            )
        )
        self.say(
            f"POST /recalls → [bold]{accepted.recall_id}[/]: {accepted.affected_lots} lot(s),"
            f" {accepted.affected_customer_count} customers,"
            f" {accepted.shipped_quantity} EA shipped."
            " The summary goes out on `recall-issued`, then one notice per customer."
        )

        async def notices_sent() -> RecallView:
            view = await self.api.recall(accepted.recall_id)
            if not view.notices_complete:
                raise NotYet(
                    f"{view.notified_customers} of {view.affected_customer_count} notified"
                )
            return view

        view = await self.wait(notices_sent, f"every notice of recall {accepted.recall_id} sent")

        async def quarantined() -> str:
            stock = await self.api.stock_lot(lot.lot_id)
            if stock.status.value != "recalled":
                raise NotYet(f"lot {lot.lot_code} is {stock.status.value} in inventory")
            return f"{stock.on_hand} {stock.uom} on hand"

        on_hand = await self.wait(quarantined, "inventory blocks the recalled lot")
        self.console.print(recall_panel(view))
        self.console.print(recall_lots_table(view))
        self.say(
            f"Inventory: lot {lot.lot_code} is recalled ({on_hand}); nothing more ships from it."
        )
        return view

    async def affected_customers(self, lot: ReceiptView, view: RecallView) -> frozenset[str]:
        self.chapter("Who must be told")
        self.console.print(recall_customers_table(view.customers))
        listed = frozenset(customer.customer_id for customer in view.customers)
        received = frozenset(self.customers_by_lot()[lot.lot_code])
        if listed == received:
            self.say(
                f"[green]✓[/] {view.notified_customers} customers notified: exactly those this"
                f" run shipped lot {lot.lot_code} to ({', '.join(sorted(received))})."
            )
        else:
            self.say(
                f"[red]✗[/] the recall lists {sorted(listed)}, but this run shipped"
                f" {lot.lot_code} to {sorted(received)}"
            )
        return listed

    async def files(self, lot: ReceiptView, recall_id: str) -> tuple[Path, Path]:
        self.chapter("Files for the recall coordinator")
        folder = self.settings.output_dir
        folder.mkdir(parents=True, exist_ok=True)
        genealogy = folder / f"genealogy-{file_safe(lot.lot_code)}.mmd"
        chart = await self.api.genealogy(lot.lot_id)
        genealogy.write_text(chart, encoding="utf-8")
        customers = folder / f"recall-{file_safe(recall_id)}-customers.csv"
        rows = await self.api.write_recall_customers_csv(recall_id, customers)
        self.console.print(Syntax(chart, "text", theme="ansi_dark", word_wrap=True))
        self.say(
            f"Genealogy (Mermaid; paste into https://mermaid.live): [bold]{genealogy}[/]\n"
            f"Affected customers and shipments ({rows} rows): [bold]{customers}[/]"
        )
        return genealogy, customers


async def run_demo(settings: DemoSettings, console: Console) -> DemoOutcome:
    """Tell the whole story against the platform `settings` points at; returns its outcome."""
    async with LottraceClient(settings.connection) as api:
        story = Story(settings, api, console)
        await story.platform_is_ready()
        await story.products()
        await story.receive_oranges()
        await story.receive_juice()
        await story.orders_arrive()
        await story.ship()
        lot, complainant = story.complaint()
        await story.trace(lot)
        view = await story.recall(lot, complainant)
        affected = await story.affected_customers(lot, view)
        genealogy, customers_csv = await story.files(lot, view.recall_id)
    console.print()
    console.rule("[bold]done", align="left")
    return DemoOutcome(
        run_id=settings.run_id,
        lots=dict(story.lots),
        recalled_lot_code=lot.lot_code,
        recalled_lot_id=lot.lot_id,
        complainant=complainant.customer.customer_id,
        recall_id=view.recall_id,
        received_recalled_lot=frozenset(story.customers_by_lot()[lot.lot_code]),
        affected_customers=affected,
        notified_customers=view.notified_customers,
        genealogy_file=genealogy,
        customers_csv=customers_csv,
    )
