"""Supervision under `make run`: a component (a service, the broker, PostgreSQL) that exits or
is killed is started again, as compose's `restart: unless-stopped` would.

The first death is restarted at once (a killed service should serve again within seconds);
deaths that follow within the window wait longer each time. A crash loop (`max_restarts`
restarts within `window` seconds, and it died again) stops the platform with a message
naming the component's log. Each restart is one console line, a line in the platform log
and in the component's log, and a count in `Supervisor.restarts`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class RestartPolicy:
    max_restarts: int = 5
    window: float = 60.0
    first_backoff: float = 0.5
    max_backoff: float = 8.0


def restart_delay(restarts: Sequence[float], now: float, policy: RestartPolicy) -> float | None:
    """How long to wait before restarting a component that just died, given the times of
    its earlier restarts; None when it is crash-looping and must not be restarted."""
    recent = [moment for moment in restarts if now - moment < policy.window]
    if len(recent) >= policy.max_restarts:
        return None
    if not recent:
        return 0.0
    return float(min(policy.first_backoff * 2 ** (len(recent) - 1), policy.max_backoff))


class Component(Protocol):
    """Something the supervisor keeps running."""

    @property
    def name(self) -> str: ...

    @property
    def log_path(self) -> Path | None: ...

    def exit_code(self) -> int | None:
        """None while running; the exit status (negative: the signal) once it has exited."""
        ...

    async def restart(self) -> None:
        """Start it again and return when it is ready to be relied upon."""
        ...


class CrashLoop(Exception):
    """A component kept dying: the platform stops."""

    def __init__(self, component: str, log_path: Path | None, restarts: int, window: float):
        where = f"see {log_path}" if log_path else "see its output above"
        super().__init__(
            f"{component} keeps exiting ({restarts} restarts within {window:.0f} s); "
            f"the platform stops: {where}"
        )
        self.component = component


@dataclass
class Supervisor:
    components: Sequence[Component]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    log_path: Path | None = None
    say: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic
    restarts: dict[str, int] = field(default_factory=dict)
    _history: dict[str, list[float]] = field(default_factory=dict)

    async def run(self) -> None:
        """Watch every component until cancelled; raises CrashLoop when one keeps dying."""
        async with asyncio.TaskGroup() as group:
            for component in self.components:
                group.create_task(self._watch(component))

    async def _watch(self, component: Component) -> None:
        while True:
            code = component.exit_code()
            if code is None:
                await asyncio.sleep(POLL_SECONDS)
                continue
            await self._revive(component, code)

    async def _revive(self, component: Component, code: int) -> None:
        history = self._history.setdefault(component.name, [])
        delay = restart_delay(history, self.clock(), self.policy)
        if delay is None:
            self._record(component, f"{component.name} exited ({_status(code)}): crash loop")
            raise CrashLoop(component.name, component.log_path, len(history), self.policy.window)
        count = self.restarts.get(component.name, 0) + 1
        self.restarts[component.name] = count
        history.append(self.clock())
        wait = f" in {delay:.1f} s" if delay else ""
        self._record(component, f"{component.name} exited ({_status(code)}); restart {count}{wait}")
        await asyncio.sleep(delay)
        await _attempt(component.restart(), component, self._record)

    def _record(self, component: Component, line: str) -> None:
        self.say(line)
        stamped = f"{datetime.now(UTC).isoformat(timespec='seconds')} supervisor: {line}\n"
        for path in (self.log_path, component.log_path):
            if path is not None:
                try:
                    with open(path, "a") as log:
                        log.write(stamped)
                except OSError:
                    pass  # a log that cannot be written does not stop the supervision


async def _attempt(
    restart: Awaitable[None], component: Component, record: Callable[[Component, str], None]
) -> None:
    """Run a restart; a failure is recorded and left to the next death check (the component
    is still down, so it counts as another death and backs off)."""
    try:
        await restart
    except Exception as error:
        record(component, f"{component.name} did not come back: {error}")


def _status(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"status {code}"
