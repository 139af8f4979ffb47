"""Runs the planned GetMetricData calls a few at a time, handing their answers back in order.

A call to CloudWatch spends most of its time waiting on the network, and the tap spends its own
time writing the rows of the call before. With ``max_workers`` above one, the next calls are
already in flight while a call's rows are written, so a run takes about as long as its slowest
part instead of the sum of both. At most ``max_workers`` calls are in flight or finished and
waiting, which bounds memory to that many calls' datapoints (a call holds at most 100,800).

Answers are always consumed in plan order, so rows, bookmarks and STATE are exactly those of a
sequential run. A call that fails raises when its turn comes, after every earlier call's rows
are out; later calls already fetched are discarded and not bookmarked, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
UTC = dt.timezone.utc


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """One call's answer, when it arrived and how long it took."""

    index: int
    value: T
    extracted_at: dt.datetime
    seconds: float


class CallPipeline(Generic[T]):
    """Fetches call ``0..count-1`` with ``fetch(index)``, up to ``max_workers`` ahead."""

    def __init__(self, fetch: Callable[[int], T], count: int, max_workers: int) -> None:
        self._fetch = fetch
        self._count = count
        self._max_workers = max(1, max_workers)
        self._next_submit = 0
        self._next_take = 0
        self._pending: deque[Future[Fetched[T]]] = deque()
        self._executor: ThreadPoolExecutor | None = None

    def _timed(self, index: int) -> Fetched[T]:
        started = time.monotonic()
        value = self._fetch(index)
        return Fetched(index, value, dt.datetime.now(UTC), time.monotonic() - started)

    def _fill(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="get-metric-data"
            )
        while len(self._pending) < self._max_workers and self._next_submit < self._count:
            self._pending.append(self._executor.submit(self._timed, self._next_submit))
            self._next_submit += 1

    def take(self) -> Fetched[T]:
        """The next call's answer, in plan order; re-raises that call's error."""
        if self._next_take >= self._count:
            msg = "every planned call has been taken"
            raise IndexError(msg)
        self._next_take += 1
        if self._max_workers == 1:
            return self._timed(self._next_take - 1)
        self._fill()
        future = self._pending.popleft()
        try:
            fetched = future.result()
        except BaseException:
            self.close()
            raise
        self._fill()
        return fetched

    @property
    def in_flight(self) -> int:
        """Calls submitted and not yet taken."""
        return len(self._pending)

    def close(self) -> None:
        """Drop calls not yet started; calls already on the wire finish in the background."""
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._next_submit = self._next_take = self._count
