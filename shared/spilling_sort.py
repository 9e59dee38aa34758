"""Sorting more items than a process should hold at once: sorted runs spilled to anonymous
temporary files, merged as they are read back."""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")


class SpillingSort(Generic[T]):
    """Items added in any number of calls, given back sorted by `key` (stably: equal keys in
    the order added). At most `run_items` are held before a sorted run goes to disk; merging
    holds `chunk_items` of each run. Use it as a context manager: leaving closes the runs, and
    a closed run's file is gone."""

    def __init__(self, key: Callable[[T], Any], *, run_items: int, chunk_items: int = 500) -> None:
        self._key = key
        self._run_items = run_items
        self._chunk_items = chunk_items
        self._items: list[T] = []
        self._runs: list[IO[bytes]] = []

    def __enter__(self) -> SpillingSort[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for run in self._runs:
            run.close()
        self._runs.clear()
        self._items = []

    @property
    def runs(self) -> int:
        """How many sorted runs went to disk."""
        return len(self._runs)

    def add(self, items: Iterable[T]) -> None:
        self._items.extend(items)
        if len(self._items) >= self._run_items:
            self._spill()

    def sorted(self) -> Iterator[T]:
        """Every item added, sorted; the runs on disk are read as the merge reaches them."""
        self._items.sort(key=self._key)
        if not self._runs:
            return iter(self._items)
        return heapq.merge(*map(self._read, self._runs), self._items, key=self._key)

    def _spill(self) -> None:
        self._items.sort(key=self._key)
        run = tempfile.TemporaryFile()  # noqa: SIM115 (closed on leaving the sort)
        self._runs.append(run)
        for start in range(0, len(self._items), self._chunk_items):
            chunk = self._items[start : start + self._chunk_items]
            pickle.dump(chunk, run, protocol=pickle.HIGHEST_PROTOCOL)
        run.seek(0)
        self._items = []

    @staticmethod
    def _read(run: IO[bytes]) -> Iterator[T]:
        # Our own files, written just before: nothing else writes what is unpickled here.
        while True:
            try:
                chunk: list[T] = pickle.load(run)
            except EOFError:
                return
            yield from chunk
