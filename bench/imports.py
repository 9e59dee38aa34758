"""`python -m bench.imports`: `lottrace import` of a lots file and a shipments file of
`--rows` rows each, against receiving and fulfillment running as their own processes.

Each time runs from reading the file to the last batch committed (every row's receipt or
shipment with its event in the outbox): reading and checking the CSV, finding the shipments'
lots in receiving, and every batch over HTTP, as the command does it. The lots file has two
locations per lot; the shipments file ships those lots to 5,000 customers."""

from __future__ import annotations

import argparse
import asyncio
import csv
import tempfile
import time
from pathlib import Path
from typing import Any

from lottrace.client import Connection, LottraceClient, ServiceUrls
from lottrace.devstack import Platform
from lottrace.imports.formats import FORMATS, FileKind
from lottrace.imports.readers import read_table
from lottrace.imports.upload import SENDERS
from lottrace.imports.validation import check_table

TARGET_ROWS = 100_000
BATCH = 500
SKUS = 200
CUSTOMERS = 5_000


def _lot_code(lot: int) -> tuple[str, str]:
    return f"SKU-{lot % SKUS:03d}", f"IMP-{lot:06d}"


def write_lots(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "lot_code", "location", "on_hand", "received_at",
                         "supplier_id", "supplier_lot_code", "expiry_date", "unit_cost",
                         "currency"])  # fmt: skip
        for row in range(rows):
            lot = row // 2
            sku, code = _lot_code(lot)
            writer.writerow([sku, code, ("MAIN", "COLD")[row % 2], 10 + row % 90,
                             f"2026-{1 + lot % 9:02d}-{1 + lot % 28:02d}", f"SUP-{lot % 40}",
                             f"S{lot}", "2027-12-31", "1.25", "EUR"])  # fmt: skip


def write_shipments(path: Path, rows: int) -> None:
    lots = max(1, rows // 2)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["row_key", "order_id", "customer_id", "customer_name", "shipped_at",
                         "sku", "lot_code", "quantity"])  # fmt: skip
        for row in range(rows):
            sku, code = _lot_code(row % lots)
            customer = row % CUSTOMERS
            writer.writerow([f"H-{row}", f"SO-H{row // 3}", f"C-{customer}",
                             f"Customer {customer}", "2026-11-02T10:00:00Z", sku, code,
                             1 + row % 5])  # fmt: skip


async def timed_import(target: Connection, kind: FileKind, path: Path, rows: int) -> float:
    """Seconds to import the file as `lottrace import` does; every row must go in."""
    started = time.perf_counter()
    checked = check_table(read_table(path), FORMATS[kind])
    async with LottraceClient(target) as api:
        outcome = await SENDERS[kind](
            api, checked.rows, batch_size=BATCH, dry_run=False, advance=lambda _: None
        )
    elapsed = time.perf_counter() - started
    if checked.rejected or outcome.rejected or outcome.imported != rows:
        raise RuntimeError(f"{kind}: {outcome.imported} of {rows} imported: {outcome.rejected[:3]}")
    return elapsed


async def measure(platform: Platform, rows: int) -> dict[str, Any]:
    """Both imports on a started platform with receiving and fulfillment."""
    target = Connection(
        urls=ServiceUrls.from_mapping(platform.urls()), api_key=platform.admin_key, timeout=120
    )
    with tempfile.TemporaryDirectory(prefix="lottrace-bench-imports-") as folder:
        lots, shipments = Path(folder) / "lots.csv", Path(folder) / "shipments.csv"
        write_lots(lots, rows)
        write_shipments(shipments, rows)
        lots_s = await timed_import(target, FileKind.LOTS, lots, rows)
        shipments_s = await timed_import(target, FileKind.SHIPMENTS, shipments, rows)
    return {
        "rows": rows,
        "lots_s": lots_s,
        "lots_rows_per_s": rows / lots_s,
        "lots_100k_s": TARGET_ROWS * lots_s / rows,
        "shipments_s": shipments_s,
        "shipments_rows_per_s": rows / shipments_s,
        "shipments_100k_s": TARGET_ROWS * shipments_s / rows,
    }


async def _standalone(rows: int) -> dict[str, Any]:
    from bench.run import make_platform  # bench.run imports this module

    platform = make_platform(
        Path(tempfile.mkdtemp(prefix="lottrace-bench-")), services=("receiving", "fulfillment")
    )
    await platform.start(timeout=180)
    try:
        return await measure(platform, rows)
    finally:
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    result = asyncio.run(_standalone(parser.parse_args().rows))
    for kind in ("lots", "shipments"):
        print(f"{kind:9}: {result['rows']:,} rows in {result[f'{kind}_s']:6.1f} s"
              f" ({result[f'{kind}_rows_per_s']:,.0f} rows/s; 100k rows:"
              f" {result[f'{kind}_100k_s']:.0f} s, target < 120)")  # fmt: skip


if __name__ == "__main__":
    main()
