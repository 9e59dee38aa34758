"""A sort of more items than a process should hold gives them back as one sort in memory
would, equal keys in the order added, with runs spilled to disk and gone once it is left."""

from __future__ import annotations

import random

from shared.spilling_sort import SpillingSort


def test_items_come_back_as_one_stable_sort_would_give_them() -> None:
    rng = random.Random(7)
    items = [(rng.randrange(50), n) for n in range(1_000)]  # many equal keys
    key = lambda item: item[0]  # noqa: E731
    with SpillingSort[tuple[int, int]](key, run_items=64, chunk_items=10) as spilling:
        for start in range(0, len(items), 37):
            spilling.add(items[start : start + 37])
        assert spilling.runs > 1
        assert list(spilling.sorted()) == sorted(items, key=key)


def test_what_fits_is_sorted_in_memory() -> None:
    with SpillingSort[int](abs, run_items=10) as spilling:
        spilling.add([3, -1, 2])
        assert spilling.runs == 0
        assert list(spilling.sorted()) == [-1, 2, 3]


def test_leaving_closes_the_runs() -> None:
    with SpillingSort[int](abs, run_items=2) as spilling:
        spilling.add([3, 1, 2, 5])
        runs = list(spilling._runs)
    assert runs
    assert all(run.closed for run in runs)
