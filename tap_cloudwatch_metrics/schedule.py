"""Pure: each series' window this run, the partition order, and the calls that fetch them.

Kept apart from the stream so the whole run's plan (and the ``plan`` command's bill) comes
from the same code, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tap_cloudwatch_metrics.planner import (
    Call,
    SeriesWindow,
    align_up,
    plan_calls,
    window_start,
)
from tap_cloudwatch_metrics.series import Series

# ListMetrics' RecentlyActive=PT3H lists only series published to in the last three hours.
RECENTLY_ACTIVE_SECONDS = 3 * 3600
# A series first listed this run may have had data just before the last run's end that
# ListMetrics did not show yet (new metrics take up to 15 minutes to be listed).
NEW_SERIES_MARGIN = 3600


@dataclass(frozen=True)
class Floors:
    """Earliest window starts: for series with a bookmark, and for series seen the first time."""

    known: int
    new: int


def floors(
    start_date: int,
    *,
    explicit: bool,
    history_start: int | None,
    last_run_end: int | None,
) -> Floors:
    """Where windows may start.

    An explicit ``start_date`` bounds every series. Otherwise a series with a bookmark resumes
    from it, however old (only retention limits it), and a series seen the first time starts
    where the tap's history starts (the first run's ``start_date``) or, once a run has
    completed, a margin before that run's end: earlier runs would have listed it had it had
    data then.
    """
    if explicit:
        return Floors(start_date, start_date)
    history = history_start if history_start is not None else start_date
    new = history if last_run_end is None else max(history, last_run_end - NEW_SERIES_MARGIN)
    return Floors(0, new)


def use_recently_active(
    setting: bool | None,
    resumes: Iterable[int],
    floor_new: int,
    now: int,
) -> bool:
    """Whether ListMetrics may be limited to series published to in the last three hours.

    Automatic (``setting`` None): only when every window, of known series and of new ones,
    starts within those three hours, so no series with data still to fetch can be left out.
    """
    if setting is not None:
        return setting
    horizon = now - RECENTLY_ACTIVE_SECONDS
    return floor_new >= horizon and all(start >= horizon for start in resumes)


@dataclass
class RunPlan:
    """What this run fetches: series in partition order, their windows, and the calls."""

    series: list[Series]
    windows: list[SeriesWindow]
    bookmarks: dict[int, int | None]
    calls: list[Call]
    end: int
    clamped: int = 0
    position_of: dict[str, int] = field(default_factory=dict)
    last_call: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.position_of = {s.series_id: i for i, s in enumerate(self.series)}
        self.last_call = {q.position: c for c, call in enumerate(self.calls) for q in call.queries}

    @property
    def billed_metric_requests(self) -> int:
        """Queries over all planned calls (before any unplanned continuation page)."""
        return sum(len(call.queries) for call in self.calls)


def plan_run(
    series: Sequence[Series],
    bookmarks: Mapping[str, int | None],
    *,
    floor: Floors,
    now: int,
    end: int,
    period: int,
    statistics: Sequence[str],
    lookback: int = 0,
) -> RunPlan:
    """Windows for every series (by region, then start: longest first) and the fewest calls.

    Calls are planned region by region: a GetMetricData call reads one region.
    """
    starts: list[tuple[int, str, Series, int | None]] = []
    clamped = 0
    for item in series:
        bookmark = bookmarks.get(item.series_id)
        lowest = floor.new if bookmark is None else floor.known
        start, cut = window_start(bookmark, lowest, period, now, lookback)
        clamped += cut and start < end
        starts.append((start, item.series_id, item, bookmark))
    starts.sort(key=lambda entry: (entry[2].region, entry[0], entry[1]))
    windows = [
        SeriesWindow(position, start)
        for position, (start, *_rest) in enumerate(starts)
        if start < end
    ]
    by_region: dict[str, list[SeriesWindow]] = {}
    for window in windows:
        by_region.setdefault(starts[window.position][2].region, []).append(window)
    calls = [
        replace(call, group=region)
        for region, group in by_region.items()
        for call in plan_calls(group, end, period, statistics)
    ]
    return RunPlan(
        series=[entry[2] for entry in starts],
        windows=windows,
        bookmarks={position: entry[3] for position, entry in enumerate(starts)},
        calls=calls,
        end=end,
        clamped=clamped,
    )


def steady_state_calls(
    series_count: int, every: int, period: int, statistics: Sequence[str]
) -> int:
    """Calls of a run that finds every series one schedule interval behind."""
    end = align_up(2_000_000_000, period)  # any aligned end: only the window length matters
    start = end - max(period, align_up(every, period))
    windows = [SeriesWindow(i, start) for i in range(series_count)]
    return len(plan_calls(windows, end, period, statistics))
