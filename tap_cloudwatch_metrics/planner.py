"""Pure planning: which GetMetricData calls fetch a run's windows, with no I/O.

The rules the plan keeps, each a promise of the tap:

* windows are half-open ``[start, end)`` and aligned to the period, so a bucket is never split
  between two runs and every datapoint's timestamp is the start of a closed period;
* a call carries at most 500 queries and asks for at most 100,800 datapoints (one page), so a
  query is billed once per run instead of once per continuation page;
* a call has one StartTime for all its queries: queries are taken in order of their series'
  start (the stream orders its partitions that way), packed into the fewest calls, and a
  series is not stretched over a much longer window unless that saves a call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_PAGE = 100_800
# A query whose window is shorter than this share of its call's window may start a new call.
MIN_WINDOW_SHARE = 0.8


def align_down(timestamp: int, period: int) -> int:
    """The start of the period containing ``timestamp`` (epoch seconds)."""
    return timestamp - timestamp % period


def align_up(timestamp: int, period: int) -> int:
    """The first period boundary at or after ``timestamp``."""
    return -(-timestamp // period) * period


def run_end(now: int, delay_seconds: int, period: int, end_date: int | None) -> int:
    """Exclusive end of this run: the end of the last period closed ``delay_seconds`` ago.

    A period is emitted only once ``period end + delay <= now``: CloudWatch keeps aggregating
    late samples into the newest periods, and an emitted partial value would never be replaced.
    """
    limit = now - delay_seconds
    if end_date is not None:
        limit = min(limit, end_date)
    return align_down(limit, period)


@dataclass(frozen=True)
class SeriesWindow:
    """A series to fetch: its position in the stream's partition order and its window start."""

    position: int
    start: int


@dataclass(frozen=True)
class Query:
    """One ``MetricDataQuery``: a series and a statistic; billed once per call that carries it."""

    query_id: str
    position: int
    statistic: str


@dataclass(frozen=True)
class Call:
    """One GetMetricData request (before any continuation page)."""

    start: int
    end: int
    queries: tuple[Query, ...]
    # Which client sends it (the region); a call never mixes regions.
    group: str = ""

    def points_per_query(self, period: int) -> int:
        """Datapoints a query can return at most in this call's window."""
        return (self.end - self.start) // period


def _capacity(span: int, max_queries: int, max_points: int) -> int:
    """Queries a call can carry when its window is ``span`` periods long (at least one)."""
    return max(1, min(max_queries, max_points // max(1, span)))


def plan_calls(
    windows: Sequence[SeriesWindow],
    end: int,
    period: int,
    statistics: Sequence[str],
    *,
    max_queries: int = MAX_QUERIES_PER_CALL,
    max_points: int = MAX_DATAPOINTS_PER_PAGE,
) -> list[Call]:
    """The fewest GetMetricData calls that fetch every due (series, statistic) exactly once.

    Queries are taken longest window first (windows ordered by start, then position: the
    order the stream gives its partitions). A call's StartTime is that of its first, longest
    query, so it can carry ``min(500, 100,800 // span)`` queries. Filling each call that full
    is optimal: any call holding the longest remaining query holds at most that many, and
    taking the next-longest ones leaves the shortest possible rest. A second pass then ends a
    call early at the first query whose window is much shorter (below ``MIN_WINDOW_SHARE`` of
    the call's), whenever the rest still fits in the calls left, so short windows are not
    stretched over long ones without need. Windows with ``start >= end`` are not due.
    """
    due = sorted((w for w in windows if w.start < end), key=lambda w: (w.start, w.position))
    items = [(w, stat) for w in due for stat in statistics]
    spans = [(end - w.start) // period for w, _ in items]
    count = len(items)
    capacity = [_capacity(span, max_queries, max_points) for span in spans]
    fewest_from = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        fewest_from[i] = 1 + fewest_from[min(count, i + capacity[i])]

    calls: list[Call] = []
    left = fewest_from[0]
    i = 0
    while i < count:
        stop = min(count, i + capacity[i])
        for j in range(i + 1, stop):
            if spans[j] < MIN_WINDOW_SHARE * spans[i]:
                if 1 + fewest_from[j] <= left:
                    stop = j
                break
        chunk = items[i:stop]
        calls.append(
            Call(
                start=min(w.start for w, _ in chunk),
                end=end,
                queries=tuple(
                    Query(f"q{index}", w.position, stat) for index, (w, stat) in enumerate(chunk)
                ),
            )
        )
        left -= 1
        i = stop
    return calls


def minimum_calls(total_queries: int, total_points: int) -> int:
    """The fewest calls any plan needs: by query count and by page size."""
    return max(
        math.ceil(total_queries / MAX_QUERIES_PER_CALL),
        math.ceil(total_points / MAX_DATAPOINTS_PER_PAGE),
    )


# ListMetrics shows series with data in the last two weeks; a day of margin on top. A series
# missing from it with a bookmark older than this has had no data since, and is forgotten.
DISCOVERY_HORIZON = 15 * 86400


def retention_floor(period: int, now: int) -> int:
    """Oldest time CloudWatch still holds data at ``period`` resolution.

    High-resolution data (periods under a minute) lives 3 hours, 1-minute data 15 days,
    5-minute data 63 days, 1-hour data 455 days; asking for older buckets returns nothing.
    """
    if period < 60:
        age = 3 * 3600
    elif period % 300:
        age = 15 * 86400
    elif period % 3600:
        age = 63 * 86400
    else:
        age = 455 * 86400
    return now - age


def window_start(
    bookmark: int | None,
    floor: int,
    period: int,
    now: int,
    lookback: int = 0,
) -> tuple[int, bool]:
    """Start of a series' window this run, and whether retention cut it short.

    A known series continues one period after its bookmark, or ``lookback`` periods earlier to
    re-read late data; a series never fetched before starts at ``floor``. Neither starts before
    CloudWatch's retention for the period (the flag says it would have).
    """
    start = align_up(floor, period)
    if bookmark is not None:
        start = max(start, align_down(bookmark, period) + period - lookback * period)
    oldest = align_up(retention_floor(period, now), period)
    return max(start, oldest), start < oldest
