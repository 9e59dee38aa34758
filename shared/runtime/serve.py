"""Run one service's HTTP app (and with it, its consumer and relay) under uvicorn."""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.runtime.http import start_draining
from shared.runtime.logging import configure_logging
from shared.runtime.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)
# Python's cycle collector runs after every 700 container objects allocated and not freed. A
# consumer batch builds thousands (models, rows, dataclasses), nearly all freed by reference
# counting, so the collector ran some 2,000 times in a 15,000-order burst and scanned
# objects that live as long as the process: 7-8% of each service's CPU (gc.callbacks timing
# during `python -m bench.pipeline --orders 5000`). Frozen start-up objects are never scanned
# again, and a collection every 50,000 leaves time for the rest: 1.4 s of inventory's GC
# became 0.05 s, and its CPU for the burst 18.5 s became 16.0 s (fulfillment 14.7 -> 12.8 s,
# recall 8.4 -> 7.4 s). The garbage a cycle holds waits a little longer: a few MB at most.
GC_FIRST_GENERATION_THRESHOLD = 50_000


def serve(name: str, create_app: Callable[[S], FastAPI], settings: S) -> None:
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
