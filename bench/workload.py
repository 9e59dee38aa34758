"""The synthetic workload: a catalogue, lots (some expired, some on hold, some produced from
ingredient lots), customers and orders of one to five lines. Deterministic for a seed."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.contracts.events import GoodsReceived, OrderPlaced, OrderShipped


@dataclass(frozen=True)
class Size:
    """How big a run is: `quick` for a check in minutes, `full` for the figures we publish.

    The stock (SKUs, lots, customers) comes first; the measurements after it default to 0, so
    a size that only seeds stock (the chaos run's) names just the stock."""

    name: str
    skus: int
    lots_per_sku: int
    customers: int
    throughput_orders: int = 0
    half_rate_seconds: float = 0
    traces: int = 0
    recall_lines: int = 0
    recall_customers: int = 0
    lot_quantity: int = 50_000


QUICK = Size(
    name="quick",
    skus=40,
    lots_per_sku=4,
    customers=5_000,
    throughput_orders=5_000,
    half_rate_seconds=15,
    traces=100,
    recall_lines=100_000,
    recall_customers=10_000,
)
FULL = Size(
    name="full",
    skus=300,
    lots_per_sku=8,
    customers=30_000,
    throughput_orders=30_000,
    half_rate_seconds=45,
    traces=500,
    recall_lines=1_000_000,
    recall_customers=100_000,
)


@dataclass
class Catalogue:
    skus: list[str]
    receipts: list[dict[str, Any]] = field(default_factory=list)
    orderable_skus: list[str] = field(default_factory=list)


def catalogue(size: Size, rng: random.Random, today: date) -> Catalogue:
    """Receipts for every SKU's lots: expiry spread from already expired to a year out."""
    skus = [f"SKU-{n:04d}" for n in range(size.skus)]
    result = Catalogue(skus=skus)
    for sku in skus:
        for lot in range(size.lots_per_sku):
            if lot == 0 and rng.random() < 0.2:
                expires_in = -rng.randint(1, 30)  # already expired: receivable, never allocated
            else:
                expires_in = rng.randint(20, 365)
            result.receipts.append(
                {
                    "sku": sku,
                    "quantity": str(size.lot_quantity),
                    "expiry_date": (today + timedelta(days=expires_in)).isoformat(),
                    "supplier": {"supplier_id": f"SUP-{rng.randint(1, 40):02d}"},
                    "purchase_order": f"PO-{rng.randint(1, 99999):05d}",
                    "unit_cost": {"amount": f"{rng.uniform(0.2, 9):.2f}", "currency": "EUR"},
                }
            )
    result.orderable_skus = list(skus)
    return result


def customer(rng: random.Random, customers: int) -> dict[str, Any]:
    number = rng.randint(1, customers)
    return {
        "customer_id": f"CUST-{number:06d}",
        "name": f"Customer {number}",
        "email": f"customer{number}@example.com",
        "address": {"city": "Lyon", "country": "FR", "postal_code": f"{69000 + number % 10:05d}"},
    }


def orders(
    prefix: str, count: int, skus: list[str], size: Size, rng: random.Random
) -> list[OrderPlaced]:
    result = []
    for n in range(count):
        lines = rng.randint(1, 5)
        chosen = rng.sample(skus, lines)
        result.append(
            OrderPlaced(
                order_id=f"{prefix}-{n:07d}",
                customer=customer(rng, size.customers),
                lines=[
                    {"line_no": i + 1, "sku": sku, "quantity": rng.randint(1, 4)}
                    for i, sku in enumerate(chosen)
                ],
                placed_at=datetime.now(UTC),
            )
        )
    return result


@dataclass
class RecallLoad:
    """Lots and shipments for the recall benchmark: one lot shipped to many customers, hidden
    among many more shipment lines of other lots."""

    big_lot: GoodsReceived
    other_lots: list[GoodsReceived]
    shipments: list[OrderShipped]

    @property
    def lines(self) -> int:
        return sum(len(s.lines) for s in self.shipments)


def recall_load(size: Size, rng: random.Random) -> RecallLoad:
    now = datetime.now(UTC)

    def lot(sku: str, code: str) -> GoodsReceived:
        return GoodsReceived(
            receipt_id=f"RC-{code}",
            lot_id=uuid.uuid4(),
            lot_code=code,
            sku=sku,
            quantity=10_000_000,
            received_at=now - timedelta(days=30),
            expiry_date=(now + timedelta(days=200)).date(),
            supplier={"supplier_id": "SUP-01"},
        )

    big = lot("OJ-1L", "OJ-BIG-0001")
    others = [lot(f"SKU-{n % 300:04d}", f"LOT-{n:05d}") for n in range(2_000)]
    lines_per_shipment = 5
    shipments_count = size.recall_lines // lines_per_shipment
    big_customers = size.recall_customers
    shipments = []
    for n in range(shipments_count):
        if n < big_customers:
            customer_id = f"BIG-{n:07d}"  # each big-lot customer exactly once
            chosen = [big, *rng.sample(others, lines_per_shipment - 1)]
        else:
            customer_id = f"OTHER-{rng.randint(1, big_customers * 2):07d}"
            chosen = rng.sample(others, lines_per_shipment)
        shipments.append(
            OrderShipped(
                shipment_id=f"SH-{n:08d}",
                order_id=f"SO-{n:08d}",
                customer={"customer_id": customer_id, "name": f"Customer {customer_id}"},
                shipped_at=now - timedelta(minutes=rng.randint(1, 40_000)),
                lines=[
                    {
                        "line_no": i + 1,
                        "sku": chosen_lot.sku,
                        "lot_id": chosen_lot.lot_id,
                        "lot_code": chosen_lot.lot_code,
                        "quantity": rng.randint(1, 6),
                    }
                    for i, chosen_lot in enumerate(chosen)
                ],
            )
        )
    rng.shuffle(shipments)
    return RecallLoad(big_lot=big, other_lots=others, shipments=shipments)
