"""Run one service's HTTP app (and with it, its consumer and relay) under uvicorn."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.runtime.http import start_draining
from shared.runtime.logging import configure_logging
from shared.runtime.settings import InvalidSettings, ServiceSettings, load_settings

S = TypeVar("S", bound=ServiceSettings)
# Python's cycle collector runs after every 700 container objects allocated and not freed. A
# consumer batch builds thousands (models, rows, dataclasses), nearly all freed by reference
# counting, so the collector ran about 2,000 times in a 15,000-order burst and rescanned
# objects that live as long as the process (7-8 % of a service's CPU, timed once with
# gc.callbacks). Frozen start-up objects are never scanned again, and a collection every
# 50,000 leaves time for the rest: `python -m bench.pipeline --orders 5000 --rate 600
# --seconds 15` gives the burst's CPU per order line, 0.32-0.36 ms before and 0.28 ms after in
# inventory, 0.24-0.25 and 0.19-0.21 in fulfillment. The garbage a cycle holds waits longer:
# peak memory in `make bench` did not move (85-126 MB a service).
GC_FIRST_GENERATION_THRESHOLD = 50_000
# The exit status of a service refused its settings, as the CLI's for arguments it refuses:
# whoever runs it can tell a configuration to fix from a crash.
CONFIGURATION_ERROR = 2


def serve(name: str, create_app: Callable[[S], FastAPI], settings_class: type[S]) -> None:
    try:
        settings = load_settings(settings_class)
    except InvalidSettings as refusal:
        print(f"{name} cannot start: invalid settings\n{refusal}", file=sys.stderr)
        raise SystemExit(CONFIGURATION_ERROR) from None
    configure_logging(service=name, level=settings.log_level, fmt=settings.log_format)
    # `make run` sends SIGUSR1 when Ctrl-C is pressed: stop taking writes, keep delivering.
    signal.signal(signal.SIGUSR1, lambda *_: start_draining())
    app = create_app(settings)
    gc.freeze()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
