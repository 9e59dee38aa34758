"""Onboarding imports, the plumbing every service's import shares: rows keyed so that a re-run
takes each row once, a batch whose keys are its own, one batch of a kind at a time, and the
keys earlier batches took kept in a table of the service's own.

What a row means and what importing it does stays in the service."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, Self, TypeVar

from fastapi import Request
from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.contracts.types import Identifier, StrictModel, require_distinct
from shared.runtime.database import Connection, UnitOfWork
from shared.runtime.http import database_of

MAX_IMPORT_ROWS = 2000
MAX_ROW_KEY_LENGTH = 100  # an Identifier's


def row_key_field(derived: str) -> Any:
    """A row's `row_key` column, documented with the key made when it is omitted."""
    return Field(
        default=None,
        description=f"What makes a re-run import the row once; `{derived}` when omitted.",
    )


class KeyedRow(StrictModel):
    """A row of an import file; a service's row sets `row_key` from its columns when omitted."""

    row_key: Identifier | None = None

    @property
    def key(self) -> str:
        assert self.row_key is not None, "set by the validator"
        return self.row_key

    def key_by_default(self, derived: str) -> None:
        """Without a `row_key`, the key derived from the row's columns; one too long for a
        row key refuses the row, on its `row_key` column (a batch would refuse it whole)."""
        if self.row_key is not None:
            return
        if len(derived) > MAX_ROW_KEY_LENGTH:
            problem = PydanticCustomError(
                "row_key_too_long",
                "the derived row key is longer than {limit} characters: give a row_key",
                {"limit": MAX_ROW_KEY_LENGTH},
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=problem, loc=("row_key",), input=derived)],
            )
        self.row_key = derived


RowT = TypeVar("RowT", bound=KeyedRow)
ResultT = TypeVar("ResultT")
ImportedT = TypeVar("ImportedT", bound=BaseModel)
RowT_contra = TypeVar("RowT_contra", bound=KeyedRow, contravariant=True)
ResultT_co = TypeVar("ResultT_co", covariant=True)


class RowRejection(StrictModel):
    """A row left out, and why; the column is the file's column the reason is about."""

    row_key: str
    column: str | None = None
    reason: str


def not_happened_yet(moment: datetime, now: datetime, column: str) -> str | None:
    """Why a row's `column` cannot be right when `moment` is after now: an import records what
    has happened. None when it has."""
    if moment <= now:
        return None
    return f"{column} {moment.isoformat()} is in the future: give when it really happened"


class ImportRequest(StrictModel, Generic[RowT]):
    """A batch of an import file's rows, each with its own row key."""

    rows: list[RowT] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)
    dry_run: StrictBool = Field(
        default=False, description="Check every row, say what would be imported, write nothing."
    )

    @model_validator(mode="after")
    def _keys_unique(self) -> Self:
        require_distinct((row.key for row in self.rows), "each row needs its own row_key")
        return self


class ImportResult(StrictModel, Generic[ImportedT]):
    """What a batch did: a service describes its imported rows and adds what else it reports."""

    imported: list[ImportedT]
    already_imported: list[str] = Field(
        description="Row keys an earlier import took: nothing of them is imported twice."
    )


@dataclass(frozen=True)
class ImportLedger:
    """Where a service notes the row keys its imports of one kind took: the table (with a
    `row_key` column) and the name of the lock that lets one batch of the kind in at a time."""

    lock_name: str
    table: str

    async def open(self, connection: Connection, rows: Sequence[RowT]) -> ImportBatch[RowT]:
        """Waits for the batch of this kind before to commit, then splits `rows` into the
        fresh ones and those an earlier import took."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", self.lock_name
        )
        taken = await connection.fetch(
            f"SELECT row_key FROM {self.table} WHERE row_key = ANY($1::text[])",
            [row.key for row in rows],
        )
        return ImportBatch(rows, frozenset(row["row_key"] for row in taken))


@dataclass(frozen=True)
class ImportBatch(Generic[RowT]):
    rows: Sequence[RowT]
    taken: frozenset[str]

    @property
    def fresh(self) -> list[RowT]:
        return [row for row in self.rows if row.key not in self.taken]

    @property
    def already_imported(self) -> list[str]:
        return [row.key for row in self.rows if row.key in self.taken]


class Importer(Protocol[RowT_contra, ResultT_co]):
    """A service's import: the rows of one batch into a unit of work."""

    def __call__(
        self, unit: UnitOfWork, rows: Sequence[RowT_contra], *, now: datetime, dry_run: bool
    ) -> Awaitable[ResultT_co]: ...


async def run_import(
    request: Request, body: ImportRequest[RowT], importer: Importer[RowT, ResultT]
) -> ResultT:
    """Imports the batch in one unit of work, as of now."""

    async def work(unit: UnitOfWork) -> ResultT:
        return await importer(unit, body.rows, now=datetime.now(UTC), dry_run=body.dry_run)

    return await database_of(request).run(work)
