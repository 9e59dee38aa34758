"""The two onboarding file formats: a file's columns are the fields of its row model, which
is the services' own import row with `received_at`/`shipped_at` read more freely (a date
alone, or a time without offset, as spreadsheets write them: UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

from services.fulfillment.schemas import ShipmentHistoryRow
from services.receiving.schemas import LotImportRow


def _moment(value: Any) -> Any:
    """A date is midnight UTC; a date and time without an offset is UTC."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text} is not a date (YYYY-MM-DD) or date and time") from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    return value


FileMoment = Annotated[AwareDatetime, BeforeValidator(_moment)]


class LotFileRow(LotImportRow):
    received_at: FileMoment


class ShipmentFileRow(ShipmentHistoryRow):
    shipped_at: FileMoment


class FileKind(StrEnum):
    LOTS = "lots"
    SHIPMENTS = "shipments"


@dataclass(frozen=True)
class FileFormat:
    kind: FileKind
    row: type[LotFileRow] | type[ShipmentFileRow]

    @property
    def columns(self) -> list[str]:
        return list(self.row.model_fields)

    @property
    def required(self) -> list[str]:
        return [name for name, info in self.row.model_fields.items() if info.is_required()]


FORMATS = {
    FileKind.LOTS: FileFormat(FileKind.LOTS, LotFileRow),
    FileKind.SHIPMENTS: FileFormat(FileKind.SHIPMENTS, ShipmentFileRow),
}
