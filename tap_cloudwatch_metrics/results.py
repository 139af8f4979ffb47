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

from tap_cloudwatch_metrics.planner import Batch


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


def assemble(
    batch: Batch,
    results: Mapping[str, QueryResult],
    end: int,
    statistics: Sequence[str],
) -> dict[int, list[DataPoint]]:
    """Datapoints per partition position for every series in ``batch``.

    Points outside the series' own ``[start, end)`` are dropped (a call's window starts at the
    earliest series of its batch); non-finite values are dropped (they cannot be loaded as
    numbers and CloudWatch does not store them).
    """
    starts = {w.position: w.start for w in batch.windows}
    order = {stat: index for index, stat in enumerate(statistics)}
    points: dict[int, dict[tuple[int, int], DataPoint]] = defaultdict(dict)
    caps: dict[int, int] = {}
    for call in batch.calls:
        for query in call.queries:
            result = results.get(query.query_id)
            if result is None:
                continue
            start = starts[query.position]
            series_points = points[query.position]
            rank = order[query.statistic]
            for timestamp, value in zip(result.timestamps, result.values, strict=False):
                if start <= timestamp < end and math.isfinite(value):
                    series_points[(timestamp, rank)] = DataPoint(timestamp, query.statistic, value)
            if result.truncated:
                last = max((t for t in result.timestamps if t < end), default=start - 1)
                caps[query.position] = min(caps.get(query.position, last), last)
    assembled: dict[int, list[DataPoint]] = {}
    for position in starts:
        cap = caps.get(position)
        keyed = points.get(position, {})
        assembled[position] = [keyed[key] for key in sorted(keyed) if cap is None or key[0] <= cap]
    return assembled
