"""Sending checked rows to the platform in batches, one client for the whole file: lots to
receiving's `POST /imports/lots`; shipments, once their lots are found in receiving
(`POST /lookups/lots`), to fulfillment's `POST /imports/shipments`. Each batch is one
transaction on the service, so a run that stops part-way can simply be run again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from lottrace.client import LottraceClient, Service
from lottrace.imports.formats import FileKind, LotFileRow, ShipmentFileRow
from lottrace.imports.rejects import Rejection
from lottrace.imports.validation import FileRow, rejections
from services.fulfillment.schemas import (
    ShipmentImportRequest,
    ShipmentImportResult,
    ShipmentImportRow,
)
from services.receiving.schemas import (
    FoundLot,
    LotImportRequest,
    LotImportResult,
    LotLookupRequest,
    LotReference,
)
from shared.runtime.imports import RowRejection

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Advance = Callable[[int], None]
LOOKUP_BATCH = 5_000
_FOUND_LOTS = TypeAdapter(list[FoundLot])


@dataclass
class ImportOutcome:
    """What an import did (or, dry, would do) with the file's rows."""

    imported: int = 0
    already_imported: int = 0
    new_lots: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


async def _post(
    api: LottraceClient, service: Service, path: str, body: BaseModel, answer: type[M]
) -> M:
    response = await api.request(service, "POST", path, body=body)
    return answer.model_validate_json(response.content)


async def import_lots(
    api: LottraceClient,
    rows: Iterable[FileRow[LotFileRow]],
    *,
    batch_size: int,
    dry_run: bool,
    advance: Advance,
) -> ImportOutcome:
    outcome = ImportOutcome()
    for batch in batched(rows, batch_size):
        line_of = {item.row.key: item.line for item in batch}
        request = LotImportRequest(rows=[item.row for item in batch], dry_run=dry_run)
        result = await _post(api, "receiving", "/imports/lots", request, LotImportResult)
        outcome.imported += len(result.imported)
        outcome.new_lots += sum(row.new_lot for row in result.imported)
        outcome.already_imported += len(result.already_imported)
        outcome.rejected += _refused(result.rejected, line_of)
        advance(len(batch))
    return outcome


def _refused(rejected: Iterable[RowRejection], line_of: dict[str, int]) -> list[Rejection]:
    """The rows a service refused, at their lines of the file."""
    return [
        Rejection(line_of[refused.row_key], refused.column or "", refused.reason)
        for refused in rejected
    ]


async def find_lots(
    api: LottraceClient, codes: set[tuple[str, str]]
) -> dict[tuple[str, str], FoundLot]:
    """The lots receiving knows among these (sku, lot_code)."""
    found: dict[tuple[str, str], FoundLot] = {}
    for batch in batched(sorted(codes), LOOKUP_BATCH):
        request = LotLookupRequest(
            lots=[LotReference(sku=sku, lot_code=code) for sku, code in batch]
        )
        response = await api.request("receiving", "POST", "/lookups/lots", body=request)
        for lot in _FOUND_LOTS.validate_json(response.content):
            found[(lot.sku, lot.lot_code)] = lot
    return found


def with_lots(
    rows: Iterable[FileRow[ShipmentFileRow]], lots: dict[tuple[str, str], FoundLot]
) -> tuple[list[FileRow[ShipmentImportRow]], list[Rejection]]:
    """Each shipment row with the lot it names, or refused: a lot the platform does not know,
    or a unit that is not the lot's."""
    resolved: list[FileRow[ShipmentImportRow]] = []
    rejected: list[Rejection] = []
    for item in rows:
        row = item.row
        lot = lots.get((row.sku, row.lot_code))
        if lot is None:
            rejected.append(
                Rejection(
                    item.line,
                    "lot_code",
                    f"no lot {row.lot_code} of {row.sku} on the platform: import it in a lots"
                    " file first",
                )
            )
        elif row.uom is not None and row.uom != lot.uom:
            reason = f"lot {row.lot_code} of {row.sku} is counted in {lot.uom}, not {row.uom}"
            rejected.append(Rejection(item.line, "uom", reason))
        else:
            found = {"lot_id": lot.lot_id, "uom": lot.uom}
            try:
                wire = ShipmentImportRow.model_validate({**row.model_dump(), **found})
            except ValidationError as error:  # the file check let through what the wire refuses
                rejected += rejections(item.line, error)
                continue
            resolved.append(FileRow(item.line, wire))
    return resolved, rejected


async def import_shipments(
    api: LottraceClient,
    rows: Iterable[FileRow[ShipmentFileRow]],
    *,
    batch_size: int,
    dry_run: bool,
    advance: Advance,
) -> ImportOutcome:
    lots = await find_lots(api, {(item.row.sku, item.row.lot_code) for item in rows})
    outcome = ImportOutcome()
    for batch in batched(rows, batch_size):
        resolved, rejected = with_lots(batch, lots)
        outcome.rejected += rejected
        if resolved:
            request = ShipmentImportRequest(rows=[item.row for item in resolved], dry_run=dry_run)
            result = await _post(
                api, "fulfillment", "/imports/shipments", request, ShipmentImportResult
            )
            outcome.imported += len(result.imported)
            outcome.already_imported += len(result.already_imported)
            outcome.rejected += _refused(result.rejected, {i.row.key: i.line for i in resolved})
        advance(len(batch))
    return outcome


class Sender(Protocol):
    async def __call__(
        self,
        api: LottraceClient,
        rows: Iterable[FileRow[Any]],
        *,
        batch_size: int,
        dry_run: bool,
        advance: Advance,
    ) -> ImportOutcome: ...


SENDERS: dict[FileKind, Sender] = {
    FileKind.LOTS: import_lots,
    FileKind.SHIPMENTS: import_shipments,
}
"""What sends the checked rows of each kind of file."""
