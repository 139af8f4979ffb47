"""Pure planning: which GetMetricData calls fetch a run's windows, with no I/O.

The rules the plan keeps, each a promise of the tap:

* windows are half-open ``[start, end)`` and aligned to the period, so a bucket is never split
  between two runs and every datapoint's timestamp is the start of a closed period;
* a call carries at most 500 queries and asks for at most 100,800 datapoints (one page), so a
  query is billed once per run instead of once per continuation page;
* a call has one StartTime for all its queries: series are taken in order of their own start
  (the stream orders its partitions that way) and a batch is closed before a later series would
  waste more than a fifth of the page on points it does not need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_PAGE = 100_800
# A series whose own window is shorter than this share of the batch window starts a new batch.
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


def series_start(bookmark: int | None, start_date: int, period: int) -> int:
    """Inclusive start of a series' window.

    ``bookmark`` is the timestamp of the series' last emitted period (its own cursor), so the
    window starts one period after it; a series without one starts at ``start_date``.
    """
    first = align_up(start_date, period)
    if bookmark is None:
        return first
    return max(first, align_down(bookmark, period) + period)


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

    def points_per_query(self, period: int) -> int:
        """Datapoints a query can return at most in this call's window."""
        return (self.end - self.start) // period


@dataclass(frozen=True)
class Batch:
    """Consecutive series fetched together, and the calls that fetch them."""

    windows: tuple[SeriesWindow, ...]
    calls: tuple[Call, ...]

    @property
    def positions(self) -> tuple[int, ...]:
        """Partition positions served by this batch, ascending."""
        return tuple(w.position for w in self.windows)


def plan_batches(
    windows: Sequence[SeriesWindow],
    end: int,
    period: int,
    statistics: Sequence[str],
    *,
    max_queries: int = MAX_QUERIES_PER_CALL,
    max_points: int = MAX_DATAPOINTS_PER_PAGE,
) -> list[Batch]:
    """Group windows (in the given order) into batches of calls within CloudWatch's limits.

    Windows that are empty (``start >= end``) are left out: nothing is due for them.
    """
    due = [w for w in windows if w.start < end]
    batches: list[Batch] = []
    group: list[SeriesWindow] = []
    group_start = 0
    per_series = len(statistics)
    for window in due:
        if group:
            start = min(group_start, window.start)
            span = (end - start) // period
            queries = (len(group) + 1) * per_series
            own_share = (end - window.start) / (end - start)
            if (
                queries <= max_queries
                and queries * span <= max_points
                and own_share >= MIN_WINDOW_SHARE
            ):
                group.append(window)
                group_start = start
                continue
            batches.append(
                _batch(
                    group,
                    start=group_start,
                    end=end,
                    period=period,
                    statistics=statistics,
                    max_queries=max_queries,
                    max_points=max_points,
                )
            )
        group, group_start = [window], window.start
    if group:
        batches.append(
            _batch(
                group,
                start=group_start,
                end=end,
                period=period,
                statistics=statistics,
                max_queries=max_queries,
                max_points=max_points,
            )
        )
    return batches


def _batch(
    group: list[SeriesWindow],
    *,
    start: int,
    end: int,
    period: int,
    statistics: Sequence[str],
    max_queries: int,
    max_points: int,
) -> Batch:
    """One batch; a single series too long for one page is split across calls by statistic."""
    span = max(1, (end - start) // period)
    per_call = max(1, min(max_queries, max_points // span))
    queries = [
        Query(f"q{index}", window.position, statistic)
        for index, (window, statistic) in enumerate((w, s) for w in group for s in statistics)
    ]
    calls = tuple(
        Call(start, end, tuple(queries[i : i + per_call])) for i in range(0, len(queries), per_call)
    )
    return Batch(tuple(group), calls)


def minimum_calls(total_queries: int, total_points: int) -> int:
    """The fewest calls any plan needs: by query count and by page size."""
    return max(
        math.ceil(total_queries / MAX_QUERIES_PER_CALL),
        math.ceil(total_points / MAX_DATAPOINTS_PER_PAGE),
    )


# ListMetrics shows series with data in the last two weeks; a day of margin on top.
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
) -> int:
    """Start of a series' window this run.

    A known series continues after its own bookmark. A series never fetched before starts at
    ``floor`` (the configured ``start_date``, or the first run's start) but no earlier than
    the discovery horizon: it could not have had data that ListMetrics hid from earlier runs.
    Neither starts before CloudWatch's retention for the period.
    """
    if bookmark is None:
        floor = max(floor, now - DISCOVERY_HORIZON)
    start = series_start(bookmark, floor, period)
    return max(start, align_up(retention_floor(period, now), period))
