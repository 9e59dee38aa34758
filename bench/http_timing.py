"""GET calls timed as a client sees them, by two clients side by side.

A trace takes a few milliseconds, and the client's own work counts in its figure. httpx parses
a response in pure Python (h11); aiohttp parses it in C. `make bench` times its traces with
aiohttp and makes each call with httpx too, in the same run: in the runs of 2026-12-07 at
22:24 and 22:41, the p50 was 1.3 and 1.5 ms by aiohttp against 2.1 and 2.3 ms by httpx, the
p99 8.9 and 8.2 ms against 10.8 and 9.8 ms (their notes in docs/benchmarks.md; each run's
figures are `trace` in its `bench/results/latest.json`).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Literal

import aiohttp
import httpx

Client = Literal["aiohttp", "httpx"]
CLIENTS: tuple[Client, ...] = ("aiohttp", "httpx")


class TimedClients:
    """Both clients, each with its own kept-alive connection, sending `headers`."""

    def __init__(self, headers: dict[str, str], timeout_s: float = 30) -> None:
        self._aiohttp = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        )
        self._httpx = httpx.AsyncClient(headers=headers, timeout=timeout_s)

    async def __aenter__(self) -> TimedClients:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._aiohttp.close()
        await self._httpx.aclose()

    async def get_ms(self, client: Client, url: str) -> float:
        """Milliseconds from sending `GET url` until its whole body is read; an error status
        raises."""
        started = time.perf_counter()
        if client == "aiohttp":
            async with self._aiohttp.get(url) as response:
                await response.read()
                response.raise_for_status()
        else:
            (await self._httpx.get(url)).raise_for_status()
        return (time.perf_counter() - started) * 1000
