"""A service's periodic work (the expiry sweep, recall reminders): one unit of work per turn,
for as long as the service runs. A failure is logged and tried again at the next turn, so a
database that is away for a while stops nothing for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.runtime.database import Database, UnitOfWork
from shared.runtime.logging import get_logger

log = get_logger(__name__)


async def every(
    database: Database,
    work: Callable[[UnitOfWork], Awaitable[int]],
    *,
    seconds: float,
    what: str,
    again_while_busy: bool = False,
) -> None:
    """Run `work` in its own transaction every `seconds`. It returns how much it did; with
    `again_while_busy` a turn that did something is followed at once by another (catching up
    in bounded steps), else the next turn waits."""
    while True:
        try:
            done = await database.run(work)
        except Exception as error:
            log.warning(f"{what} failed; retrying", error=str(error))
            done = 0
        if not (again_while_busy and done):
            await asyncio.sleep(seconds)
