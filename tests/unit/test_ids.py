"""Ids drawn many at a time are still what consumers de-duplicate on: distinct, well-formed
random UUIDs (the set-based notice path gives each notice one of them)."""

from __future__ import annotations

from uuid import RFC_4122, UUID

from shared.ids import random_uuid_bytes


def test_ids_drawn_at_once_are_distinct_version_4_uuids() -> None:
    drawn = random_uuid_bytes(5000)
    ids = [UUID(bytes=drawn[start : start + 16]) for start in range(0, len(drawn), 16)]

    assert len(set(ids)) == len(ids) == 5000
    assert {uuid.version for uuid in ids} == {4}
    assert {uuid.variant for uuid in ids} == {RFC_4122}
