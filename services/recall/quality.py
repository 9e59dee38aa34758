"""The data-quality monitor's rules (docs/reports.md): what makes a lot's records unfit for a
trace or a recall, and how to fix it. Pure: facts read by `db.py` in, findings out.

The recall projection knows no product catalogue: it learns of a shelf life from the lots
themselves. A SKU has a shelf life when one of its lots was received with an expiry date.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from services.recall.reports import EventType, FsmaColumn, FsmaRow, receipt_rows, shipment_row
from services.recall.schemas import DataQualityReport, QualityExample, QualityFinding

EXAMPLES = 10  # examples per finding a report shows, by default
MAX_EXAMPLES = 100  # examples per finding a check keeps, and a report shows at most
# A scheduled check is due once the stored one is this much of the schedule's interval old:
# the first replica to come round after that runs it, so the checks keep the interval.
DUE_AFTER = 0.9


class Finding(StrEnum):
    SHIPPED_NEVER_RECEIVED = "shipped_lot_never_received"
    MISSING_EXPIRY = "missing_expiry_date"
    MISSING_SUPPLIER = "missing_supplier"
    MISSING_SUPPLIER_LOT_CODE = "missing_supplier_lot_code"
    UNKNOWN_INPUTS = "unknown_production_inputs"
    MISSING_KDES = "missing_fsma204_kdes"


TITLES: Mapping[Finding, str] = {
    Finding.SHIPPED_NEVER_RECEIVED: "Shipped lots the platform never received",
    Finding.MISSING_EXPIRY: "Lots without an expiry date whose product has a shelf life",
    Finding.MISSING_SUPPLIER: "Purchased lots without a supplier",
    Finding.MISSING_SUPPLIER_LOT_CODE: "Purchased lots without the supplier's lot code",
    Finding.UNKNOWN_INPUTS: "Production receipts whose inputs were never received",
    Finding.MISSING_KDES: "Lots missing FSMA 204 key data elements",
}

HOW_TO_FIX: Mapping[Finding, str] = {
    Finding.SHIPPED_NEVER_RECEIVED: "Receive the lot (POST /receipts, or `lottrace import lots`"
    " for stock from before lottrace) so a recall reaches its source; or, if the shipment"
    " named the wrong lot, correct it in the system that shipped it.",
    Finding.MISSING_EXPIRY: "Have receiving record the expiry date of this SKU (scan the GS1"
    " label's AI 17): FEFO and the expiry sweep skip undated lots. The lot's next receipt"
    " with a date fills it in.",
    Finding.MISSING_SUPPLIER: "Have receipts of purchased goods name supplier.supplier_id: a"
    " recall by supplier and FSMA 204's immediate previous source need it. The lot's next"
    " receipt naming its supplier fills it in.",
    Finding.MISSING_SUPPLIER_LOT_CODE: "Have receiving record the supplier's lot code"
    " (supplier_lot_code, or scan their GS1 label, AI 10): a supplier's recall names their lot"
    " codes. The lot's next receipt with it fills it in.",
    Finding.UNKNOWN_INPUTS: "Receive (or import) the input lots the production consumed: until"
    " then a recall of an ingredient cannot follow them into this lot.",
    Finding.MISSING_KDES: "Complete what the example names at its source: a location on the"
    " receipt, the supplier, or the customer's address in the upstream order system.",
}

# The key data elements each critical tracking event must carry (21 CFR 1.1345, 1.1350,
# 1.1340), as columns of the FSMA 204 sortable spreadsheet.
_CORE = (
    FsmaColumn.TLC,
    FsmaColumn.QUANTITY,
    FsmaColumn.UNIT_OF_MEASURE,
    FsmaColumn.PRODUCT_DESCRIPTION,
    FsmaColumn.EVENT_DATE,
    FsmaColumn.EVENT_LOCATION,
    FsmaColumn.TLC_SOURCE,
    FsmaColumn.TLC_SOURCE_REFERENCE,
    FsmaColumn.REFERENCE_DOCUMENT_NUMBER,
)
REQUIRED_KDES: Mapping[str, tuple[FsmaColumn, ...]] = {
    EventType.RECEIVING: (*_CORE, FsmaColumn.PREVIOUS_SOURCE),
    EventType.TRANSFORMATION: (*_CORE, FsmaColumn.INPUT_TLC, FsmaColumn.INPUT_QUANTITY),
    EventType.SHIPPING: (*_CORE, FsmaColumn.RECIPIENT, FsmaColumn.RECIPIENT_ADDRESS),
}


@dataclass(frozen=True)
class QualityLot:
    """A received lot, as the checks see it."""

    lot_id: UUID
    lot_code: str
    sku: str
    supplier_id: str | None
    supplier_lot_code: str | None
    expiry_date: date | None
    produced: bool  # made from input lots: its lot code and origin are ours
    inputs_received: list[bool]  # per input of its production: whether it was received

    @property
    def unknown_inputs(self) -> int:
        """Inputs of its production never received: a recall of them cannot follow them."""
        return sum(1 for received in self.inputs_received if not received)


@dataclass(frozen=True)
class UnreceivedLot:
    """A lot shipments name that no receipt ever brought in."""

    lot_id: UUID
    lot_code: str
    sku: str
    shipment_lines: int


def is_due(checked_at: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether the scheduled check runs now: none stored yet, or the stored one is due."""
    return checked_at is None or now - checked_at >= interval * DUE_AFTER


def with_examples(report: DataQualityReport, examples: int) -> DataQualityReport:
    """The report with at most `examples` examples per finding."""
    findings = [
        finding.model_copy(update={"examples": finding.examples[:examples]})
        for finding in report.findings
    ]
    return report.model_copy(update={"findings": findings})


def has_shelf_life(sku: str, dated_skus: Collection[str]) -> bool:
    """A SKU has a shelf life when one of its lots was received with an expiry date."""
    return sku in dated_skus


def lot_findings(lot: QualityLot, dated_skus: Collection[str]) -> list[tuple[Finding, str]]:
    """What is wrong with a received lot's own records, each with what is missing;
    `dated_skus` are the SKUs with a lot received with an expiry date."""
    found: list[tuple[Finding, str]] = []
    if lot.expiry_date is None and has_shelf_life(lot.sku, dated_skus):
        found.append((Finding.MISSING_EXPIRY, f"other lots of {lot.sku} carry an expiry date"))
    if not lot.produced and lot.supplier_id is None:
        found.append((Finding.MISSING_SUPPLIER, "no supplier on its receipt"))
    if not lot.produced and lot.supplier_id is not None and lot.supplier_lot_code is None:
        found.append((Finding.MISSING_SUPPLIER_LOT_CODE, f"received from {lot.supplier_id}"))
    if lot.unknown_inputs:
        found.append((Finding.UNKNOWN_INPUTS, f"{lot.unknown_inputs} input lot(s) not received"))
    return found


def missing_kdes(rows: Iterable[FsmaRow]) -> list[str]:
    """The key data elements these spreadsheet rows leave empty, each named once with its
    event type (`Shipping: Ship-To Address`)."""
    missing: dict[str, None] = {}
    for row in rows:
        event_type = str(row.get(FsmaColumn.EVENT_TYPE))
        for column in REQUIRED_KDES.get(event_type, ()):
            if row.get(column) in (None, ""):
                missing[f"{event_type}: {column.value}"] = None
    return list(missing)


Row = Mapping[str, Any]  # a row as the FSMA 204 export reads it (services/recall/reports.py)


@dataclass(frozen=True)
class LotRecords:
    """A page of lots' FSMA 204 records, as the export reads them: receipts and shipment
    lines by lot id, inputs by receipt id."""

    receipts: Mapping[UUID, Sequence[Row]]
    inputs: Mapping[str, Sequence[Row]]
    shipments: Mapping[UUID, Sequence[Row]]

    def event_rows(self, lot_id: UUID) -> list[FsmaRow]:
        """The lot's critical tracking events as the FSMA 204 export writes them."""
        rows = [
            row
            for receipt in self.receipts.get(lot_id, ())
            for row in receipt_rows(receipt, self.inputs.get(receipt["receipt_id"], ()))
        ]
        return rows + [shipment_row(line) for line in self.shipments.get(lot_id, ())]


@dataclass
class Tally:
    """Findings counted as the checks go, with the first examples of each."""

    dated_skus: Collection[str] = frozenset()
    examples_per_finding: int = EXAMPLES
    lots_checked: int = 0
    counts: dict[Finding, int] = field(default_factory=lambda: dict.fromkeys(Finding, 0))
    examples: dict[Finding, list[QualityExample]] = field(
        default_factory=lambda: {finding: [] for finding in Finding}
    )

    def add(self, finding: Finding, example: QualityExample) -> None:
        self.counts[finding] += 1
        if len(self.examples[finding]) < self.examples_per_finding:
            self.examples[finding].append(example)

    def checked(self, lot: QualityLot, kdes: Sequence[str]) -> None:
        """One received lot checked: its own findings and its missing key data elements."""
        self.lots_checked += 1
        for finding, detail in lot_findings(lot, self.dated_skus):
            self.add(finding, _example(lot, detail))
        if kdes:
            self.add(Finding.MISSING_KDES, _example(lot, "; ".join(kdes)))

    def unreceived(self, lot: UnreceivedLot) -> None:
        detail = f"named by {lot.shipment_lines} shipment line(s)"
        self.add(Finding.SHIPPED_NEVER_RECEIVED, _example(lot, detail))

    def report(self, checked_at: datetime) -> DataQualityReport:
        findings = [
            QualityFinding(
                code=finding.value,
                title=TITLES[finding],
                count=self.counts[finding],
                how_to_fix=HOW_TO_FIX[finding],
                examples=self.examples[finding],
            )
            for finding in Finding
        ]
        return DataQualityReport(
            checked_at=checked_at,
            lots_checked=self.lots_checked,
            clean=not any(self.counts.values()),
            findings=findings,
        )


def _example(lot: QualityLot | UnreceivedLot, detail: str) -> QualityExample:
    return QualityExample(lot_id=lot.lot_id, lot_code=lot.lot_code, sku=lot.sku, detail=detail)
