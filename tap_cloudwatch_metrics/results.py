"""Pure assembly of GetMetricData answers into each series' datapoints, in emission order.

Rows of a series come out sorted by timestamp, and within a timestamp in the order of the
configured statistics, so the stream's per-series bookmark only ever moves forward. A query whose
data CloudWatch cut short (``PartialData`` with no page left) caps its whole series at the last
timestamp it did return: the bookmark then stays there and the next run fetches the rest.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tap_cloudwatch_metrics.planner import Call


@dataclass
class QueryResult:
    """Everything the pages of one call said about one query."""

    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    truncated: bool = False

    def extend(self, timestamps: Iterable[int], values: Iterable[float]) -> None:
        """Append one page's points."""
        self.timestamps.extend(timestamps)
        self.values.extend(values)


@dataclass(frozen=True)
class DataPoint:
    """One value of one statistic of one series for the period starting at ``timestamp``."""

    timestamp: int
    statistic: str
    value: float


class PointBuffer:
    """Each series' datapoints, gathered over the calls that carry its queries.

    A series' statistics may be split over two consecutive calls; it is complete once the last
    of them is added, and :meth:`pop` hands it over sorted and forgets it, so the buffer holds
    about one call's worth of data. Points outside the series' own ``[start, end)`` are dropped
    (a call's window starts at its longest query's start), and so are non-finite values.
    """

    def __init__(self, starts: Mapping[int, int], end: int, statistics: Sequence[str]) -> None:
        self._starts = starts
        self._end = end
        self._rank = {stat: index for index, stat in enumerate(statistics)}
        self._points: dict[int, dict[tuple[int, int], DataPoint]] = defaultdict(dict)
        self._caps: dict[int, int] = {}

    def add(self, call: Call, results: Mapping[str, QueryResult]) -> None:
        """Take in one call's answers."""
        for query in call.queries:
            result = results.get(query.query_id)
            if result is None:
                continue
            start = self._starts[query.position]
            series_points = self._points[query.position]
            rank = self._rank[query.statistic]
            for timestamp, value in zip(result.timestamps, result.values, strict=False):
                if start <= timestamp < self._end and math.isfinite(value):
                    series_points[(timestamp, rank)] = DataPoint(timestamp, query.statistic, value)
            if result.truncated:
                last = max((t for t in result.timestamps if t < self._end), default=start - 1)
                self._caps[query.position] = min(self._caps.get(query.position, last), last)

    def last_timestamp(self, position: int) -> int | None:
        """Newest timestamp held for the series (for its unit lookup)."""
        keyed = self._points.get(position)
        return max(keyed)[0] if keyed else None

    def pop(self, position: int) -> list[DataPoint]:
        """The series' datapoints by timestamp, then statistic order; removed from the buffer."""
        keyed = self._points.pop(position, {})
        cap = self._caps.pop(position, None)
        return [keyed[key] for key in sorted(keyed) if cap is None or key[0] <= cap]
