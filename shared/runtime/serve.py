"""Run one service's HTTP app (and with it, its consumer and relay) under uvicorn."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.runtime.http import start_draining
from shared.runtime.logging import configure_logging
from shared.runtime.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def serve(name: str, create_app: Callable[[S], FastAPI], settings: S) -> None:
    configure_logging(service=name, level=settings.log_level, fmt=settings.log_format)
    # `make run` sends SIGUSR1 when Ctrl-C is pressed: stop taking writes, keep delivering.
    signal.signal(signal.SIGUSR1, lambda *_: start_draining())
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
