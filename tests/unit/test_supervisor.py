"""The supervisor's restart policy, and crash-loop detection with a component that dies at
once every time it is started (a real child process that exits)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from lottrace.supervisor import CrashLoop, RestartPolicy, Supervisor, restart_delay

POLICY = RestartPolicy(max_restarts=5, window=60, first_backoff=0.5, max_backoff=8)


def test_a_first_death_restarts_at_once() -> None:
    assert restart_delay([], now=100.0, policy=POLICY) == 0.0


def test_repeated_deaths_back_off_doubling_up_to_the_cap() -> None:
    delays = [restart_delay([100.0] * n, now=101.0, policy=POLICY) for n in range(1, 5)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    capped = RestartPolicy(max_restarts=10, window=60, first_backoff=0.5, max_backoff=3)
    assert restart_delay([100.0] * 6, now=101.0, policy=capped) == 3.0


def test_five_restarts_within_the_window_is_a_crash_loop() -> None:
    assert restart_delay([100.0, 110, 120, 130, 140], now=150.0, policy=POLICY) is None


def test_restarts_older_than_the_window_are_forgotten() -> None:
    assert restart_delay([10.0, 20, 30, 40, 140], now=150.0, policy=POLICY) == 0.5


class ExitingCommand:
    """A component whose command exits with status 3 as soon as it starts."""

    def __init__(self, log_path: Path) -> None:
        self.name = "flaky"
        self.log_path: Path | None = log_path
        self.starts = 0
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    def exit_code(self) -> int | None:
        return self.process.poll()

    async def restart(self) -> None:
        self.process = self._spawn()


async def test_a_crash_loop_stops_the_supervisor_naming_the_log(tmp_path: Path) -> None:
    component = ExitingCommand(tmp_path / "flaky.log")
    lines: list[str] = []
    supervisor = Supervisor(
        [component],
        policy=RestartPolicy(max_restarts=5, window=60, first_backoff=0.01, max_backoff=0.05),
        log_path=tmp_path / "platform.log",
        say=lines.append,
    )
    with pytest.raises(ExceptionGroup) as raised:
        await asyncio.wait_for(supervisor.run(), timeout=30)
    [loop] = raised.value.exceptions
    assert isinstance(loop, CrashLoop)
    assert str(tmp_path / "flaky.log") in str(loop)
    assert supervisor.restarts == {"flaky": 5}
    assert component.starts == 6
    assert lines[0] == "flaky exited (status 3); restart 1"
    assert "crash loop" in lines[-1]
    for log in ("flaky.log", "platform.log"):
        assert (tmp_path / log).read_text().count("supervisor: flaky exited") == 6
