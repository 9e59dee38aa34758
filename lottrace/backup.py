"""`lottrace backup` and `lottrace restore`: every service database in one archive.

The archive is a tar: `manifest.json` first (what made it, when, from which PostgreSQL, and
the migrations each database had), then one pg_dump custom-format dump per service. Restore
reads and checks the manifest and every dump's checksum before it touches a database, refuses
databases that hold rows unless forced, then drops, creates and pg_restores each one.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.runtime.database import quote_identifier
from shared.runtime.migrations import RUNTIME_MIGRATIONS, discover

MANIFEST = "manifest.json"
FORMAT: Literal["lottrace-backup"] = "lottrace-backup"
FORMAT_VERSION: Literal[1] = 1
SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


class BackupError(Exception):
    """What went wrong, said for the operator (the command prints it, no traceback)."""


class ArchiveInvalid(BackupError):
    """Not a lottrace backup, damaged, or from a newer lottrace."""


class RestoreRefused(BackupError):
    """The target databases hold data and --force was not given."""


class DatabaseDump(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    database: str
    file: str
    sha256: str
    size: int
    postgres_version: str
    migrations: tuple[str, ...]


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["lottrace-backup"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    lottrace_version: str
    created_at: datetime
    pg_dump_version: str
    databases: tuple[DatabaseDump, ...]


@dataclass(frozen=True)
class PgTools:
    """Where pg_dump and pg_restore come from: a folder, else the PATH."""

    bin_dir: Path | None

    @classmethod
    def choose(cls, pg_bin: Path | None) -> PgTools:
        """--pg-bin when given; else the embedded PostgreSQL's own (as `make run` uses);
        else whatever is on the PATH."""
        if pg_bin is not None:
            return cls(pg_bin)
        try:
            from lottrace.infra import EmbeddedPostgres

            return cls(EmbeddedPostgres.bin_dir())
        except ImportError:
            return cls(None)

    def path(self, tool: str) -> str:
        found = (
            str(self.bin_dir / tool)
            if self.bin_dir and (self.bin_dir / tool).exists()
            else (None if self.bin_dir else shutil.which(tool))
        )
        if found is None:
            where = self.bin_dir or "the PATH"
            raise BackupError(f"{tool} not found in {where}: give its folder with --pg-bin")
        return found

    def run(self, tool: str, *args: str, what: str) -> str:
        try:
            done = subprocess.run(
                [self.path(tool), *args], capture_output=True, text=True, check=False
            )
        except OSError as error:
            raise BackupError(f"{what}: cannot run {tool}: {error}") from error
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()[-5:]
            raise BackupError(f"{what} failed: " + " / ".join(lines))
        return done.stdout.strip()


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def _maintenance_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _digest(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and size."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


async def _describe(url: str) -> tuple[str, tuple[str, ...]]:
    """The server's version, and the migrations the database has applied."""
    connection = await asyncpg.connect(url)
    try:
        version = str(await connection.fetchval("SHOW server_version"))
        if await connection.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
            return version, ()
        rows = await connection.fetch(
            "SELECT component, version, name FROM schema_migrations ORDER BY 1, 2"
        )
    finally:
        await connection.close()
    return version, tuple(f"{r['component']}/{r['version']:04d}_{r['name']}" for r in rows)


# ---------------------------------------------------------------------- backup


async def backup(urls: Mapping[str, str], archive: Path, tools: PgTools) -> Manifest:
    """Dump every service database into `archive` (written whole, then renamed into place)."""
    with tempfile.TemporaryDirectory(prefix=".lottrace-backup-", dir=archive.parent) as work:
        dumps = [await _dump(service, url, Path(work), tools) for service, url in urls.items()]
        version = await asyncio.to_thread(tools.run, "pg_dump", "--version", what="pg_dump")
        manifest = Manifest(
            lottrace_version=importlib.metadata.version("lottrace"),
            created_at=datetime.now(UTC),
            pg_dump_version=version,
            databases=tuple(dumps),
        )
        await asyncio.to_thread(_write_archive, manifest, Path(work), archive)
    return manifest


def _write_archive(manifest: Manifest, work: Path, archive: Path) -> None:
    partial = work / "archive.tar"
    with tarfile.open(partial, "w") as tar:
        _add_bytes(tar, MANIFEST, manifest.model_dump_json(indent=2).encode())
        for dump in manifest.databases:
            tar.add(work / dump.file, arcname=dump.file)
    os.replace(partial, archive)


async def _dump(service: str, url: str, work: Path, tools: PgTools) -> DatabaseDump:
    try:
        version, migrations = await _describe(url)
    except (OSError, asyncpg.PostgresError) as error:
        raise BackupError(f"{service} database {_database_name(url)}: {error}") from error
    file = f"{service}.dump"
    await asyncio.to_thread(
        tools.run,
        "pg_dump",
        "--format=custom",
        f"--file={work / file}",
        f"--dbname={url}",
        what=f"pg_dump of {service}",
    )
    digest, size = await asyncio.to_thread(_digest, work / file)
    return DatabaseDump(
        service=service,
        database=_database_name(url),
        file=file,
        sha256=digest,
        size=size,
        postgres_version=version,
        migrations=migrations,
    )


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


# ---------------------------------------------------------------------- restore


def read_manifest(archive: Path) -> Manifest:
    """The archive's manifest, checked; anything else is ArchiveInvalid with the reason."""
    try:
        with tarfile.open(archive, "r:") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            document = json.loads(member.read())
    except FileNotFoundError:
        raise ArchiveInvalid(f"{archive}: no such file") from None
    except (tarfile.TarError, KeyError, OSError, ValueError) as error:
        raise ArchiveInvalid(
            f"{archive} is not a lottrace backup (no readable {MANIFEST}: {error})"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveInvalid(f"{archive} is not a lottrace backup ({MANIFEST} is another's)")
    if document.get("format_version") != FORMAT_VERSION:
        raise ArchiveInvalid(
            f"{archive} is a lottrace backup of format {document.get('format_version')}, this"
            f" lottrace reads format {FORMAT_VERSION}: restore it with the lottrace that made it"
            f" ({document.get('lottrace_version')})"
        )
    try:
        return Manifest.model_validate(document)
    except ValidationError as error:
        raise ArchiveInvalid(f"{archive}: damaged {MANIFEST}: {error}") from None


def known_migrations(service: str) -> set[str]:
    """The migrations this lottrace has for a service's database (runtime ones included)."""
    return {
        f"{m.component}/{m.version:04d}_{m.name}"
        for m in [
            *discover("runtime", RUNTIME_MIGRATIONS),
            *discover(service, SERVICES_DIR / service / "migrations"),
        ]
    }


def check_compatible(manifest: Manifest, services: set[str]) -> None:
    """Every service is in the archive, and none had a migration this lottrace lacks (an
    archive from a newer lottrace: its services would not understand the tables)."""
    present = {dump.service for dump in manifest.databases}
    if services - present:
        raise ArchiveInvalid(f"the archive has no dump of {', '.join(sorted(services - present))}")
    for dump in manifest.databases:
        unknown = sorted(set(dump.migrations) - known_migrations(dump.service))
        if unknown:
            raise ArchiveInvalid(
                f"{dump.service} in the archive has migrations this lottrace does not know"
                f" ({', '.join(unknown)}): it was made by lottrace {manifest.lottrace_version};"
                " restore it with that version or a newer one"
            )


def extract_dumps(archive: Path, manifest: Manifest, work: Path) -> dict[str, Path]:
    """Each dump written to `work` and checked against the manifest's checksum."""
    paths = {}
    with tarfile.open(archive, "r:") as tar:
        for dump in manifest.databases:
            path = work / f"{dump.service}.dump"
            try:
                source = tar.extractfile(dump.file)
            except KeyError:
                source = None
            if source is None:
                raise ArchiveInvalid(f"{archive}: {dump.file} is missing")
            with path.open("wb") as target:
                shutil.copyfileobj(source, target)
            if _digest(path) != (dump.sha256, dump.size):
                raise ArchiveInvalid(f"{archive}: {dump.file} is damaged (checksum differs)")
            paths[dump.service] = path
    return paths


async def rows_in(url: str) -> list[str]:
    """The tables of the database that hold rows (schema_migrations aside); none when the
    database does not exist."""
    try:
        connection = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return []
    try:
        tables = await connection.fetch(
            """
            SELECT n.nspname AS schema, c.relname AS name FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations'
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1, 2
            """
        )
        found = []
        for table in tables:
            name = f"{quote_identifier(table['schema'])}.{quote_identifier(table['name'])}"
            if await connection.fetchval(f"SELECT EXISTS (SELECT FROM {name})"):
                found.append(f"{table['schema']}.{table['name']}")
        return found
    finally:
        await connection.close()


async def recreate(url: str) -> None:
    """Drop the database (disconnecting whoever uses it) and create it empty."""
    name = quote_identifier(_database_name(url))
    connection = await asyncpg.connect(_maintenance_url(url))
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()


async def restore(
    archive: Path, urls: Mapping[str, str], tools: PgTools, *, force: bool = False
) -> Manifest:
    """Restore every service database from `archive`; checks everything before any drop."""
    manifest = await asyncio.to_thread(read_manifest, archive)
    check_compatible(manifest, set(urls))
    with tempfile.TemporaryDirectory(prefix=".lottrace-restore-") as work:
        dumps = await asyncio.to_thread(extract_dumps, archive, manifest, Path(work))
        await _refuse_data(urls, force=force)
        for service, url in urls.items():
            try:
                await recreate(url)
            except (OSError, asyncpg.PostgresError) as error:
                raise BackupError(f"recreating {service} database: {error}") from error
            await asyncio.to_thread(
                tools.run,
                "pg_restore",
                "--no-owner",
                "--no-acl",
                "--exit-on-error",
                f"--dbname={url}",
                str(dumps[service]),
                what=f"pg_restore of {service}",
            )
    return manifest


async def _refuse_data(urls: Mapping[str, str], *, force: bool) -> None:
    occupied = {}
    for service, url in urls.items():
        try:
            tables = await rows_in(url)
        except (OSError, asyncpg.PostgresError) as error:
            raise BackupError(f"{service} database {_database_name(url)}: {error}") from error
        if tables:
            occupied[service] = tables
    if occupied and not force:
        listed = "; ".join(
            f"{service} ({_database_name(urls[service])}: {', '.join(tables[:3])}"
            f"{', …' if len(tables) > 3 else ''})"
            for service, tables in occupied.items()
        )
        raise RestoreRefused(
            f"not restoring over databases that hold data: {listed}. Give --force to replace"
            " them (what they hold is lost)"
        )
