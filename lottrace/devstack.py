"""The whole platform on one machine: broker, PostgreSQL, topics, databases, four services.

Used by `make run` (`lottrace dev`), the end-to-end tests and the benchmark. With
`KAFKA_BOOTSTRAP_SERVERS` set it uses that Kafka instead of starting Tansu; with
`LOTTRACE_POSTGRES_URL` (a superuser URL of an existing server) it creates the service
databases there instead of starting an embedded PostgreSQL.

With `home` (a data folder, `make run`'s `.lottrace/`) PostgreSQL keeps its data there
between runs, under a lock, with the admin key; without it (tests, benchmark) the data is
throwaway and removed on stop.

Authentication stays on (`AUTH_MODE=required`, unless the environment says otherwise): each
platform makes one random admin key (kept in the data folder with `home`),
`platform.admin_key`, and gives every service only its hash. Entries in the environment's
`API_KEYS` (JSON, as the services read it) are added to it, for demos with
several roles; `API_KEYS_FILE` is passed through as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx
from rich.markup import escape

from lottrace.drain import wait_drained
from lottrace.home import DATA_FORMAT, DataFormat, DataHome, HomeError, HomeLock, describe
from lottrace.infra import (
    SERVICES,
    EmbeddedPostgres,
    ProcessExited,
    StartError,
    TansuBroker,
    dies_with_parent,
    log_end,
    wait_until,
)
from lottrace.supervisor import Component, CrashLoop, Supervisor
from shared.contracts.topics import all_topic_names
from shared.runtime.auth import Role, hash_key
from shared.runtime.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_HTTP_PORTS = {"receiving": 8081, "inventory": 8082, "fulfillment": 8083, "recall": 8084}
# On the embedded broker a consumer's fetch waits for this much data, or its 50 ms. Under a
# steady load the services then take fewer, larger batches, each one transaction. It costs up
# to 50 ms a hop while traffic is light. What it does to the figures, and what `make bench`
# does not show, is in docs/benchmarks.md.
EMBEDDED_FETCH_MIN_BYTES = 64 * 1024
ROOT = Path(__file__).resolve().parent.parent


class ServiceExited(ProcessExited):
    """A service process ended while the platform waited for it: waiting longer cannot help."""


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path | None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _log_start: int = 0  # where this run's lines begin in a log kept between runs

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115
            self._log_start = self._log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            preexec_fn=dies_with_parent(signal.SIGTERM),  # noqa: PLW1509
        )

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 20) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def exit_report(self, lines: int = 15) -> str:
        """How the process ended and the end of its log, so a service that dies while starting
        says why where the failure is reported (a CI run's output, `lottrace dev`'s one line),
        not only in a file that may go with the run. It never raises: it reports a failure."""
        code = self.process.returncode if self.process is not None else None
        return f"{self.name} exited with status {code}. {self.log_tail(lines)}"

    def log_tail(self, lines: int) -> str:
        """The last `lines` this run wrote to the service's log, said as such."""
        if self.log_path is None:
            return "Its output went to this process's own."
        tail = log_end(self.log_path, since=self._log_start).splitlines()[-lines:]
        return f"The end of {self.log_path}:\n" + "\n".join(tail)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


@dataclass
class Platform:
    """Start with `await platform.start()`, stop with `platform.stop()`."""

    kafka_port: int = 9092
    postgres_port: int = 5432
    http_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_HTTP_PORTS))
    # One process per service reads every partition here, so more partitions buy no
    # parallelism, while Tansu reads each one on every consumer's fetch (20 a second): idle,
    # it used 29-33 % of a core with 6 partitions a topic and 8-9 % with one
    # (`python -m bench.broker_growth --partitions 6|1`).
    partitions: int = 1
    durable_postgres: bool = True
    postgres_settings: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    # A persistent data folder (`make run`); None: throwaway data (tests, benchmark).
    home: Path | None = None

    broker: TansuBroker | None = None
    postgres: EmbeddedPostgres | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    bootstrap_servers: str = ""
    database_urls: dict[str, str] = field(default_factory=dict)
    # Every role; printed by `lottrace dev`, sent by the end-to-end tests and the benchmark.
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    _api_keys: str | None = field(default=None, init=False, repr=False)
    _lock: HomeLock | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.home is not None:
            self.log_dir = self.log_dir or DataHome(self.home).logs_dir

    def open_home(self) -> None:
        """Lock the data folder, check who wrote it (HomeError when either fails), then
        take its admin key. A refused folder is left as it was."""
        if self.home is None or self._lock is not None:
            return
        data = DataHome(self.home)
        data.path.mkdir(parents=True, exist_ok=True)
        lock = HomeLock(self.home)
        lock.acquire()
        try:
            data.check_format(DataFormat(DATA_FORMAT, EmbeddedPostgres.major_version()))
            data.create()
            self.admin_key = data.admin_key()
        except BaseException:
            lock.release()
            raise
        self._lock = lock

    @property
    def api_keys(self) -> str:
        """API_KEYS for the services: the admin key's hash (never the key), then any entries
        of the environment's API_KEYS."""
        if self._api_keys is None:
            extra = self.extra_env.get("API_KEYS") or os.environ.get("API_KEYS") or "[]"
            try:
                entries = json.loads(extra)
            except json.JSONDecodeError as error:
                raise ValueError(f"API_KEYS is not a JSON list of key entries: {error}") from None
            if not isinstance(entries, list):
                raise ValueError("API_KEYS must be a JSON list of {name, roles, hash} entries")
            admin = {"name": "admin", "roles": [Role.ADMIN.value], "hash": hash_key(self.admin_key)}
            self._api_keys = json.dumps([admin, *entries])
        return self._api_keys

    async def start(self, *, timeout: float = 120) -> None:
        self.open_home()
        await self.start_infrastructure()
        for name in self.services:
            self.start_service(name)
        await self.wait_ready(timeout=timeout)

    async def start_infrastructure(self) -> None:
        external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external_kafka:
            self.bootstrap_servers = external_kafka
        else:
            self.broker = TansuBroker(
                self.kafka_port, log_path=self.log_dir / "tansu.log" if self.log_dir else None
            )
            await self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        await ensure_topics(
            KafkaSettings(bootstrap_servers=self.bootstrap_servers),
            all_topic_names(),
            partitions=self.partitions,
        )

        admin_url = os.environ.get("LOTTRACE_POSTGRES_URL")
        if admin_url:
            server = admin_url
            await _create_databases(admin_url, self.services)
        else:
            self.postgres = EmbeddedPostgres(
                self.postgres_port,
                data_dir=DataHome(self.home).postgres_dir if self.home else None,
                durable=self.durable_postgres,
                settings=dict(self.postgres_settings),
                log_path=self.log_dir / "postgres.log" if self.log_dir else None,
            )
            await self.postgres.start()
            server = self.postgres.url()
            for name in self.services:
                await self.postgres.create_database(f"lottrace_{name}")
        self.database_urls = {
            name: _with_database(server, f"lottrace_{name}") for name in self.services
        }

    def environment(self, name: str) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            f"{name.upper()}_DATABASE_URL": self.database_urls[name],
            f"{name.upper()}_HTTP_PORT": str(self.http_ports[name]),
            "PYTHONUNBUFFERED": "1",
        }
        if self.broker is not None:
            env["KAFKA_ENABLE_IDEMPOTENCE"] = "false"  # Tansu cannot do InitProducerId
            # Tansu holds a fetch for its whole max wait even when data arrives: keep it short.
            env["KAFKA_FETCH_MAX_WAIT_MS"] = "50"
            env["KAFKA_FETCH_MIN_BYTES"] = str(EMBEDDED_FETCH_MIN_BYTES)
        env.update(self.extra_env)
        env.update(self.service_env.get(name, {}))
        env["API_KEYS"] = self.api_keys
        return env

    def start_service(self, name: str) -> ServiceProcess:
        process = ServiceProcess(
            name=name,
            port=self.http_ports[name],
            env=self.environment(name),
            log_path=self.log_dir / f"{name}.log" if self.log_dir else None,
        )
        process.start()
        self.processes[name] = process
        return process

    async def wait_ready(
        self, *, timeout: float = 120, names: tuple[str, ...] | None = None
    ) -> None:
        async with httpx.AsyncClient(timeout=3) as client:
            for name in names or tuple(self.processes):
                process = self.processes[name]

                async def ready(process: ServiceProcess = process) -> bool:
                    if process.process is None or process.process.poll() is not None:
                        raise ServiceExited(process.exit_report())
                    response = await client.get(f"{process.url}/readyz")
                    return response.status_code == 200

                await wait_until(ready, timeout=timeout, interval=0.2, what=f"{name} ready")

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish what it was doing."""
        process = self.processes[name]
        process.signal(signal.SIGKILL)
        if process.process is not None:
            process.process.wait(10)
        process.stop()

    async def restart(self, name: str, *, timeout: float = 120) -> None:
        self.processes[name].stop()
        self.start_service(name)
        await self.wait_ready(timeout=timeout, names=(name,))

    def stop(self) -> None:
        for process in self.processes.values():
            process.signal(signal.SIGTERM)
        for process in self.processes.values():
            process.stop()
        self.processes.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.postgres is not None:
            self.postgres.remove()  # stops it; deletes the data only when it is throwaway
            self.postgres = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def urls(self) -> dict[str, str]:
        return {name: process.url for name, process in self.processes.items()}


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _create_databases(admin_url: str, services: tuple[str, ...]) -> None:
    import asyncpg

    connection = await asyncpg.connect(admin_url)
    try:
        for name in services:
            database = f"lottrace_{name}"
            if not await connection.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", database
            ):
                await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


class _Service:
    """A service process as a supervised component."""

    def __init__(self, platform: Platform, name: str) -> None:
        self.platform = platform
        self.name = name

    @property
    def log_path(self) -> Path | None:
        return self.platform.processes[self.name].log_path

    def exit_code(self) -> int | None:
        process = self.platform.processes[self.name].process
        return None if process is None else process.poll()

    async def restart(self) -> None:
        self.platform.processes[self.name].stop()
        self.platform.start_service(self.name)


class _EmbeddedServer:
    """A supervised embedded server (broker or PostgreSQL): its process and its log."""

    name: str

    def __init__(self, server: TansuBroker | EmbeddedPostgres) -> None:
        self.server = server

    @property
    def log_path(self) -> Path | None:
        return self.server.log_path

    def exit_code(self) -> int | None:
        return None if self.server.process is None else self.server.process.poll()


class _Broker(_EmbeddedServer):
    """The embedded broker; after a restart it has forgotten its topics: make them again."""

    name = "broker"

    def __init__(self, platform: Platform, broker: TansuBroker) -> None:
        super().__init__(broker)
        self.platform = platform
        self.broker = broker

    async def restart(self) -> None:
        self.broker.stop()
        await self.broker.start()
        await self.broker.create_topics(self.platform.partitions)


class _Postgres(_EmbeddedServer):
    name = "postgresql"

    def __init__(self, postgres: EmbeddedPostgres) -> None:
        super().__init__(postgres)
        self.postgres = postgres

    async def restart(self) -> None:
        await self.postgres.restart()


def supervised(platform: Platform) -> list[Component]:
    """What the supervisor watches: the embedded broker and PostgreSQL, and each service."""
    components: list[Component] = []
    if platform.broker is not None:
        components.append(_Broker(platform, platform.broker))
    if platform.postgres is not None:
        components.append(_Postgres(platform.postgres))
    components += [_Service(platform, name) for name in platform.processes]
    return components


def supervisor_of(platform: Platform, say: Callable[[str], None] = print) -> Supervisor:
    return Supervisor(
        supervised(platform),
        log_path=platform.log_dir / "platform.log" if platform.log_dir else None,
        say=say,
    )


async def drain(platform: Platform, say: Callable[[str], None] = print) -> bool:
    """Stop taking writes and wait (bounded) for consumers and outboxes to catch up; True
    when everything was delivered."""
    for process in platform.processes.values():
        process.signal(signal.SIGUSR1)  # draining mode: writes answer 503
    say("draining: no new writes; waiting for consumers and outboxes to catch up…")
    left = await wait_drained(platform.bootstrap_servers, platform.database_urls, say=say)
    if left is None:
        say("drained: every event published and consumed")
        return True
    say(f"drain deadline reached with {left.describe()}; they are kept and go out next start")
    return False


async def run_until_interrupted(platform: Platform) -> int:
    """`make run`: start everything, print where it listens, keep it running (restarting
    what dies) until Ctrl-C, then drain and stop. Returns the exit status."""
    from rich.console import Console

    console = Console()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    status = 0
    try:
        started = time.monotonic()
        with console.status("starting broker, PostgreSQL and the four services…"):
            await platform.start()
        _announce(console, platform, time.monotonic() - started)
        status = await _supervise(console, platform, stop)
    except (HomeError, StartError) as error:
        console.print(f"[red]lottrace cannot start:[/red] {escape(str(error))}")
        return 1
    except OSError as error:
        console.print(f"[red]lottrace cannot start:[/red] {escape(describe(error))}")
        return 1
    finally:
        if platform.processes or platform.broker or platform.postgres:
            console.print("stopping…")
            platform.stop()
            console.print("stopped.")
    return status


async def _supervise(console: Console, platform: Platform, stop: asyncio.Event) -> int:
    supervisor = supervisor_of(platform, say=lambda line: console.print(line, highlight=False))
    watching = asyncio.create_task(supervisor.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if watching.done():
        stopping.cancel()
        error = watching.exception()
        loops = [e for e in _leaves(error) if isinstance(e, CrashLoop)]
        console.print(f"[red]{escape(str(loops[0] if loops else error))}[/red]")
        return 1
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    if supervisor.restarts:
        counts = ", ".join(f"{name} {count}" for name, count in supervisor.restarts.items())
        console.print(f"restarts during this run: {counts}", highlight=False)
    await drain(platform, say=lambda line: console.print(line, highlight=False))
    return 0


def _leaves(error: BaseException | None) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [] if error is None else [error]


def _announce(console: Console, platform: Platform, seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"lottrace is up ({seconds:.1f}s)")
    table.add_column("component")
    table.add_column("address")
    table.add_row("Kafka (Tansu)" if platform.broker else "Kafka", platform.bootstrap_servers)
    for name, url in platform.database_urls.items():
        table.add_row(f"PostgreSQL ({name})", url)
    if platform.home is not None:
        table.add_row("data folder", str(platform.home))
    if platform.postgres is not None and platform.postgres.relocated:
        table.add_row(
            "PostgreSQL data",
            f"{platform.postgres.base_dir} (the data folder is not reachable by the "
            f"'{platform.postgres.run_as}' user PostgreSQL runs as)",
        )
    for name, url in platform.urls().items():
        table.add_row(name, f"{url}  (docs: {url}/docs)")
    console.print(table)
    _announce_key(console, platform)
    if platform.log_dir:
        console.print(f"logs: {platform.log_dir}")
    console.print("Ctrl-C drains and stops everything; whatever dies meanwhile is restarted.")


def _announce_key(console: Console, platform: Platform) -> None:
    if platform.environment(platform.services[0]).get("AUTH_MODE") == "disabled":
        console.print("authentication is off (AUTH_MODE=disabled): every route is open")
        return
    receiving = platform.urls().get("receiving", "http://127.0.0.1:8081")
    key = platform.admin_key
    console.print(f"API key (admin): {key}", highlight=False, soft_wrap=True)
    if platform.home is not None:
        console.print(
            f"  (kept in {DataHome(platform.home).key_file}, which the lottrace CLI and "
            "`make demo` read)"
        )
    console.print(
        f"  curl -s {receiving}/lots -H 'Authorization: Bearer {key}'",
        highlight=False,
        soft_wrap=True,
    )
