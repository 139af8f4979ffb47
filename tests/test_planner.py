"""The pure planner: CloudWatch's limits, alignment, retention, and the fewest billed calls."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tap_cloudwatch_metrics.planner import (
    MAX_DATAPOINTS_PER_PAGE,
    MAX_QUERIES_PER_CALL,
    Call,
    Query,
    SeriesWindow,
    align_down,
    align_up,
    minimum_calls,
    plan_calls,
    retention_floor,
    run_end,
    window_start,
)
from tap_cloudwatch_metrics.results import DataPoint, PointBuffer, QueryResult

ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
PERIODS = st.sampled_from([1, 5, 10, 20, 30, 60, 120, 300, 900, 3600, 86400])
STATS = st.lists(
    st.sampled_from(["Average", "Sum", "Maximum", "Minimum", "SampleCount", "p99"]),
    min_size=1,
    max_size=6,
    unique=True,
)
NOW = 1_768_478_400  # 2026-01-15T12:00:00Z
DAY = 86400


def retention_periods(period: int) -> int:
    """The longest window (in periods) CloudWatch can serve at ``period``."""
    return (NOW - retention_floor(period, NOW)) // period


def test_alignment() -> None:
    assert align_down(1000, 300) == 900
    assert align_up(1000, 300) == 1200
    assert align_up(1200, 300) == 1200
    assert align_down(1200, 300) == 1200


def test_run_end_keeps_the_open_and_the_delayed_periods_out() -> None:
    assert run_end(NOW + 299, 300, 300, None) == NOW - 300
    assert run_end(NOW + 300, 300, 300, None) == NOW
    assert run_end(NOW, 0, 60, NOW - 3600 + 30) == NOW - 3600
    assert run_end(NOW, 120, 60, None) == NOW - 120


def test_a_known_series_continues_after_its_own_bookmark() -> None:
    assert window_start(NOW - 600, NOW - 3600, 300, NOW) == (NOW - 300, False)
    assert window_start(NOW - 7200, NOW - 3600, 300, NOW) == (NOW - 3600, False)
    # An unaligned bookmark (another period before) resumes at the next boundary.
    assert window_start(NOW - 610, NOW - 3600, 300, NOW) == (NOW - 600, False)


def test_lookback_rereads_periods_before_the_bookmark_but_not_before_the_floor() -> None:
    assert window_start(NOW - 600, NOW - 3600, 300, NOW, lookback=3) == (NOW - 1200, False)
    assert window_start(NOW - 600, NOW - 900, 300, NOW, lookback=12) == (NOW - 900, False)


def test_new_series_start_at_the_floor() -> None:
    assert window_start(None, NOW - 3599, 300, NOW) == (NOW - 3300, False)
    # A first backfill of series that ListMetrics shows now reaches as far back as asked.
    assert window_start(None, NOW - 30 * DAY, 300, NOW) == (NOW - 30 * DAY, False)


def test_retention_limits_windows_and_says_so() -> None:
    assert retention_floor(1, NOW) == NOW - 3 * 3600
    assert retention_floor(60, NOW) == NOW - 15 * DAY
    assert retention_floor(120, NOW) == NOW - 15 * DAY
    assert retention_floor(300, NOW) == NOW - 63 * DAY
    assert retention_floor(3600, NOW) == NOW - 455 * DAY
    assert window_start(NOW - 30 * DAY, NOW - 90 * DAY, 60, NOW) == (NOW - 15 * DAY, True)
    assert window_start(None, NOW - 90 * DAY, 1, NOW) == (NOW - 3 * 3600, True)
    assert window_start(NOW - 30 * DAY, NOW - 90 * DAY, 300, NOW) == (NOW - 30 * DAY + 300, False)


@st.composite
def workloads(draw: st.DrawFn, max_series: int = 1_500, within_retention: bool = True):
    period = draw(PERIODS)
    end = align_down(NOW, period)
    longest = retention_periods(period) if within_retention else 2 * MAX_DATAPOINTS_PER_PAGE
    count = draw(st.integers(0, max_series))
    lengths = draw(st.lists(st.integers(-2, longest), min_size=count, max_size=count))
    ordered = sorted(end - n * period for n in lengths)
    windows = [SeriesWindow(i, start) for i, start in enumerate(ordered)]
    return windows, end, period, draw(STATS)


@settings(max_examples=150, deadline=None)
@given(workloads(within_retention=False))
def test_each_query_is_billed_once_within_cloudwatch_limits(workload) -> None:
    windows, end, period, stats = workload
    calls = plan_calls(windows, end, period, stats)
    due = [w for w in windows if w.start < end]
    starts = {w.position: w.start for w in due}

    sent = [(q.position, q.statistic) for call in calls for q in call.queries]
    assert sorted(sent) == sorted((w.position, s) for w in due for s in stats)
    # Queries come in partition order, so the stream can serve partitions as calls complete.
    positions = [q.position for call in calls for q in call.queries]
    assert positions == sorted(positions)
    for call in calls:
        ids = [q.query_id for q in call.queries]
        assert len(ids) == len(set(ids))
        assert all(ID.match(i) for i in ids)
        assert 1 <= len(call.queries) <= MAX_QUERIES_PER_CALL
        assert call.end == end
        assert call.start == min(starts[q.position] for q in call.queries)
        assert call.start % period == 0
        span = call.points_per_query(period)
        if span <= MAX_DATAPOINTS_PER_PAGE:
            assert len(call.queries) * span <= MAX_DATAPOINTS_PER_PAGE
        else:  # only past retention: one query a call, CloudWatch pages it
            assert len(call.queries) == 1


def fewest_possible_calls(spans: list[int]) -> int:
    """Exhaustive: the fewest calls of any grouping (sorted longest first, which is w.l.o.g.)."""
    spans = sorted(spans, reverse=True)
    best = [0] * (len(spans) + 1)
    for i in range(len(spans) - 1, -1, -1):
        room = max(1, min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_PAGE // max(1, spans[i])))
        best[i] = 1 + min(best[j] for j in range(i + 1, min(len(spans), i + room) + 1))
    return best[0]


@settings(max_examples=200, deadline=None)
@given(workloads(max_series=80))
def test_no_plan_uses_fewer_calls(workload) -> None:
    windows, end, period, stats = workload
    calls = plan_calls(windows, end, period, stats)
    spans = [(end - w.start) // period for w in windows if w.start < end for _ in stats]
    assert len(calls) == fewest_possible_calls(spans)


@settings(max_examples=300, deadline=None)
@given(PERIODS, st.integers(1, 4_000), st.data(), STATS)
def test_equal_windows_take_at_most_a_quarter_more_calls_than_the_lower_bound(
    period, series, data, stats
) -> None:
    span = data.draw(st.integers(1, retention_periods(period)))
    end = align_down(NOW, period)
    windows = [SeriesWindow(i, end - span * period) for i in range(series)]
    calls = plan_calls(windows, end, period, stats)
    queries = series * len(stats)
    assert len(calls) <= math.ceil(1.25 * minimum_calls(queries, queries * span))


def test_seven_hundred_series_two_statistics_take_three_calls() -> None:
    end = NOW - 300
    windows = [SeriesWindow(i, end - 3600) for i in range(700)]
    calls = plan_calls(windows, end, 300, ["Average", "Maximum"])
    assert [len(c.queries) for c in calls] == [500, 500, 400]


def test_a_long_window_does_not_stretch_short_ones_when_that_saves_no_call() -> None:
    end = NOW
    old = SeriesWindow(0, end - 14 * DAY)
    recent = [SeriesWindow(i, end - 3600) for i in range(1, 1001)]
    calls = plan_calls([old, *recent], end, 300, ["Average"])
    assert [len(c.queries) for c in calls] == [1, 500, 500]
    assert [c.start for c in calls] == [end - 14 * DAY, end - 3600, end - 3600]


def test_a_long_window_shares_a_call_when_that_saves_one() -> None:
    end = NOW
    old = SeriesWindow(0, end - 14 * DAY)
    recent = [SeriesWindow(i, end - 3600) for i in range(1, 11)]
    calls = plan_calls([old, *recent], end, 300, ["Average"])
    assert [len(c.queries) for c in calls] == [11]


def test_a_fourteen_day_backfill_of_1000_series_bills_each_query_once() -> None:
    end = NOW
    windows = [SeriesWindow(i, end - 14 * DAY) for i in range(1000)]
    calls = plan_calls(windows, end, 300, ["Average"])
    assert sum(len(c.queries) for c in calls) == 1000
    assert len(calls) == 40  # 100,800 // 4,032 = 25 queries a call


def test_point_buffer_orders_filters_and_caps() -> None:
    end = 10_000
    call = Call(
        1_000,
        end,
        (
            Query("q0", 0, "Average"),
            Query("q1", 0, "Maximum"),
            Query("q2", 1, "Average"),
        ),
    )
    second = Call(2_000, end, (Query("q0", 1, "Maximum"),))
    buffer = PointBuffer({0: 1_000, 1: 2_000}, end, ["Average", "Maximum"])
    buffer.add(
        call,
        {
            "q0": QueryResult([1_000, 1_300, 1_600], [1.0, 2.0, 3.0]),
            "q1": QueryResult([1_000, 1_300, 1_600, 10_000], [5.0, float("nan"), 7.0, 9.0]),
            # Series 1 starts at 2,000: earlier points came only because the call starts earlier.
            "q2": QueryResult([1_000, 2_000, 2_300, 2_600], [0.0, 1.0, 2.0, 3.0]),
        },
    )
    # Series 1's Maximum comes in a second call and was cut short at 2,300.
    buffer.add(second, {"q0": QueryResult([2_000, 2_300], [4.0, 5.0], truncated=True)})

    assert buffer.last_timestamp(1) == 2_600
    assert buffer.pop(0) == [
        DataPoint(1_000, "Average", 1.0),
        DataPoint(1_000, "Maximum", 5.0),
        DataPoint(1_300, "Average", 2.0),
        DataPoint(1_600, "Average", 3.0),
        DataPoint(1_600, "Maximum", 7.0),
    ]
    assert buffer.pop(1) == [
        DataPoint(2_000, "Average", 1.0),
        DataPoint(2_000, "Maximum", 4.0),
        DataPoint(2_300, "Average", 2.0),
        DataPoint(2_300, "Maximum", 5.0),
    ]
    assert buffer.pop(1) == []
    assert buffer.pop(0) == []
