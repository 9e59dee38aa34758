"""GET calls timed as a client sees them, by two clients side by side.

A trace takes a few milliseconds, and the client's own work counts in its figure. httpx parses
a response in Python (h11): on this machine it added 0.7 ms to a `/healthz` the service answers
in 0.2 ms, and 2-3 ms to a heavy trace's body of about 200 KB, against a raw socket (a
throwaway probe, 2026-12-07). aiohttp parses in C and comes within 0.1 ms of the raw socket.
So `make bench` times its traces with aiohttp, and keeps httpx's figure beside it, measured in
the same run: the client of every run before."""

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
