"""The data folder of `make run` (`lottrace dev`): where its PostgreSQL data, logs and admin
key live between runs.

By default `.lottrace/` in the checkout, or `$LOTTRACE_HOME`. The folder holds:

- `format.json`: the lottrace data-format version and the PostgreSQL major version that
  wrote it; a folder written by a newer or different version is refused, never opened;
- `lottrace.lock`: held (flock) while a platform runs on the folder, with its PID;
- `admin-key` (0600): the admin key, the same on every run;
- `postgres/`: the PostgreSQL cluster (unless the run user cannot reach the folder, see
  `lottrace.infra.postgres_location`), and `logs/`.

Nothing here deletes data except `DataHome.reset`, which `lottrace dev --reset` calls after
asking.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "LOTTRACE_HOME"
ROOT = Path(__file__).resolve().parent.parent
# Bump when a data folder written by this version cannot be read by the previous one.
DATA_FORMAT = 1
FORMAT_FILE = "format.json"
LOCK_FILE = "lottrace.lock"
KEY_FILE = "admin-key"


class HomeError(Exception):
    """An expected failure of the data folder, told to the user as it is (no traceback)."""


def default_home() -> Path:
    """`$LOTTRACE_HOME`, or `.lottrace/` in the checkout."""
    configured = os.environ.get(HOME_VARIABLE)
    return Path(configured).expanduser().absolute() if configured else ROOT / ".lottrace"


@dataclass(frozen=True)
class DataFormat:
    """What wrote a data folder: the lottrace data format and the PostgreSQL major version."""

    data_format: int
    postgres_major: int

    @classmethod
    def parse(cls, text: str) -> DataFormat:
        raw = json.loads(text)
        return cls(data_format=int(raw["data_format"]), postgres_major=int(raw["postgres_major"]))

    def dump(self) -> str:
        return json.dumps({"data_format": self.data_format, "postgres_major": self.postgres_major})


def format_problem(recorded: DataFormat, current: DataFormat) -> str | None:
    """Why this version cannot open a folder written as `recorded`; None when it can."""
    if recorded.data_format > current.data_format:
        return (
            f"it was written by a newer lottrace (data format {recorded.data_format}; "
            f"this one reads up to {current.data_format}): update lottrace"
        )
    if recorded.postgres_major != current.postgres_major:
        return (
            f"its PostgreSQL data is version {recorded.postgres_major}, and this lottrace "
            f"runs PostgreSQL {current.postgres_major}: move it with `lottrace backup` on the "
            "old version and `lottrace restore` on this one"
        )
    return None


@dataclass
class DataHome:
    path: Path

    @property
    def postgres_dir(self) -> Path:
        return self.path / "postgres"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def key_file(self) -> Path:
        return self.path / KEY_FILE

    @property
    def format_file(self) -> Path:
        return self.path / FORMAT_FILE

    def create(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(exist_ok=True)
        except OSError as error:
            problem = describe(error)
            raise HomeError(f"cannot create the data folder {self.path}: {problem}") from None

    def check_format(self, current: DataFormat) -> None:
        """Refuse a folder written by a version this one cannot read; record ours otherwise."""
        try:
            recorded = DataFormat.parse(self.format_file.read_text())
        except FileNotFoundError:
            self.write_format(current)
            return
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise HomeError(
                f"the data folder {self.path} has an unreadable {FORMAT_FILE} ({error}); "
                "it was not opened"
            ) from None
        if (problem := format_problem(recorded, current)) is not None:
            raise HomeError(f"the data folder {self.path} was not opened: {problem}")
        if recorded != current:
            self.write_format(current)  # an older data format, upgraded by the migrations

    def write_format(self, current: DataFormat) -> None:
        write_atomically(self.format_file, current.dump() + "\n", mode=0o644)

    def admin_key(self) -> str:
        """The folder's admin key, made (0600) on first use."""
        with contextlib.suppress(FileNotFoundError):
            if key := self.key_file.read_text().strip():
                return key
        key = secrets.token_urlsafe(32)
        write_atomically(self.key_file, key + "\n", mode=0o600)
        return key

    def reset(self) -> None:
        """Delete the data (PostgreSQL, key, format record); keeps the lock and the logs."""
        shutil.rmtree(self.postgres_dir, ignore_errors=True)
        for name in (FORMAT_FILE, KEY_FILE):
            (self.path / name).unlink(missing_ok=True)


class HomeLock:
    """An exclusive flock on `lottrace.lock` in the data folder, held while the platform runs.

    The lock goes with the process: a killed platform leaves no stale lock behind."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HomeError(
                f"another lottrace (PID {holder}) is already running on {self.path.parent}; "
                "stop it (Ctrl-C in its terminal) or set LOTTRACE_HOME to another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_atomically(path: Path, text: str, *, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def describe(error: OSError) -> str:
    """An OS error in words, a full disk said plainly."""
    if error.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    return error.strerror or str(error)
