"""Identifiers: time-ordered UUIDs (RFC 9562 version 7) for events, lots, shipments and recalls."""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID


class _Uuid7Generator:
    """Keeps ids made in one process strictly increasing, even within one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_millis = 0
        self._counter = 0

    def __call__(self) -> UUID:
        with self._lock:
            millis = time.time_ns() // 1_000_000
            if millis > self._last_millis:
                self._last_millis = millis
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_millis += 1
                    self._counter = 0
            millis, counter = self._last_millis, self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (millis & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= (counter & 0xFFF) << 64
        value |= 0b10 << 62
        value |= rand_b
        return UUID(int=value)


_generate = _Uuid7Generator()


def uuid7() -> UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a counter and random bits.

    Ids made in one process are strictly increasing, so rows keyed by them stay in
    insertion order and B-tree inserts stay local.
    """
    return _generate()


def new_id() -> str:
    return str(uuid7())


def random_uuid_bytes(count: int) -> bytes:
    """`count` random (version 4) UUIDs, 16 bytes each, from one read of the OS's random
    source: for a statement that makes many ids at once. A read per id (`uuid4()`,
    PostgreSQL's gen_random_uuid()) costs 11-15 µs here, 60-75 ms for 5,000 notices
    (`python -m bench.notice_chunks --explain`)."""
    pool = bytearray(os.urandom(16 * count))
    pool[6::16] = bytes(byte & 0x0F | 0x40 for byte in pool[6::16])  # version 4
    pool[8::16] = bytes(byte & 0x3F | 0x80 for byte in pool[8::16])  # RFC 9562 variant
    return bytes(pool)
