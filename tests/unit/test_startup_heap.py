"""The start-up heap is frozen once a process, by the service runtime, not per batch."""

from __future__ import annotations

import gc
import inspect
import weakref

from shared.runtime import consumer, service
from shared.runtime.service import ServiceRuntime, freeze_startup_heap


class _Node:
    other: object = None


def test_frozen_once_a_process_after_collecting_start_up_garbage() -> None:
    freeze_startup_heap.cache_clear()
    gc.unfreeze()
    try:
        garbage = _Node()
        garbage.other = garbage  # a cycle: only the collector frees it
        gone = weakref.ref(garbage)
        del garbage
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert gone() is None  # the start-up garbage was collected, not frozen for good
        kept = [object() for _ in range(100)]
        freeze_startup_heap()
        assert gc.get_freeze_count() == frozen  # a second start-up does not freeze again
        assert kept
    finally:
        gc.unfreeze()
        freeze_startup_heap.cache_clear()


def test_the_runtime_start_up_freezes_and_the_consumer_batch_path_does_not() -> None:
    assert "freeze_startup_heap()" in inspect.getsource(ServiceRuntime._start_up)
    assert "freeze" not in inspect.getsource(consumer)
    assert service.freeze_startup_heap is freeze_startup_heap
