"""`lottrace` commands run in process against a stand-in service: the HTTP answers come from a
function, and every request the commands send is recorded for the test to read."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from lottrace.cli import app
from lottrace.client import Connection, LottraceClient

Answer = Callable[[httpx.Request], httpx.Response]


def stand_in(
    monkeypatch: pytest.MonkeyPatch, answer: Answer, *commands: ModuleType
) -> list[httpx.Request]:
    """The command modules' client talks to `answer`; the requests they send, in order."""
    requests: list[httpx.Request] = []

    def recorded(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request)

    def client(target: Connection) -> LottraceClient:
        return LottraceClient(target, transport=httpx.MockTransport(recorded))

    for module in commands:
        monkeypatch.setattr(module, "LottraceClient", client)
    return requests


def invoke(*args: str) -> Any:
    """`lottrace ARGS`, with a key and a wide terminal."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "LOTTRACE_API_KEY": "k" * 32})
