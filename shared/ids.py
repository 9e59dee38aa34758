"""Identifiers: time-ordered UUIDs (RFC 9562 version 7) for events, lots, shipments and recalls."""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

_lock = threading.Lock()
_last_millis = 0
_counter = 0


def uuid7() -> UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then a counter and random bits.

    Ids made in one process are strictly increasing, so rows keyed by them stay in
    insertion order and B-tree inserts stay local.
    """
    global _last_millis, _counter
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis > _last_millis:
            _last_millis = millis
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_millis += 1
                _counter = 0
            millis = _last_millis
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (_counter & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand_b
    return UUID(int=value)


def new_id() -> str:
    return str(uuid7())
