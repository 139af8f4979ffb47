"""The pure planner and result assembly: CloudWatch's limits, alignment, ordering."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tap_cloudwatch_metrics.planner import (
    DISCOVERY_HORIZON,
    MAX_DATAPOINTS_PER_PAGE,
    MAX_QUERIES_PER_CALL,
    Batch,
    Call,
    Query,
    SeriesWindow,
    align_down,
    align_up,
    minimum_calls,
    plan_batches,
    retention_floor,
    run_end,
    series_start,
    window_start,
)
from tap_cloudwatch_metrics.results import DataPoint, QueryResult, assemble

ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
PERIODS = st.sampled_from([1, 5, 10, 20, 30, 60, 120, 300, 900, 3600, 86400])
STATS = st.lists(
    st.sampled_from(["Average", "Sum", "Maximum", "Minimum", "SampleCount", "p99"]),
    min_size=1,
    max_size=6,
    unique=True,
)
NOW = 1_768_478_400  # 2026-01-15T12:00:00Z


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


def test_series_start_continues_after_its_own_bookmark() -> None:
    assert series_start(None, NOW - 3599, 300) == NOW - 3300
    assert series_start(NOW - 600, NOW - 3600, 300) == NOW - 300
    assert series_start(NOW - 7200, NOW - 3600, 300) == NOW - 3600


def test_new_series_start_at_the_floor_within_the_discovery_horizon() -> None:
    floor = NOW - 30 * 86400
    assert window_start(None, floor, 300, NOW) == align_up(NOW - DISCOVERY_HORIZON, 300)
    assert window_start(None, NOW - 3600, 300, NOW) == NOW - 3600
    assert window_start(NOW - 40 * 86400, NOW - 50 * 86400, 300, NOW) == NOW - 40 * 86400 + 300
    assert window_start(NOW - 40 * 86400, floor, 300, NOW) == floor


def test_retention_limits_windows() -> None:
    assert retention_floor(1, NOW) == NOW - 3 * 3600
    assert retention_floor(60, NOW) == NOW - 15 * 86400
    assert retention_floor(120, NOW) == NOW - 15 * 86400
    assert retention_floor(300, NOW) == NOW - 63 * 86400
    assert retention_floor(3600, NOW) == NOW - 455 * 86400
    assert window_start(NOW - 30 * 86400, NOW - 90 * 86400, 60, NOW) == NOW - 15 * 86400


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[SeriesWindow], int, int, list[str]]:
    period = draw(PERIODS)
    end = align_down(NOW, period)
    max_span = min(draw(st.integers(1, 25_000)), 100_800 * 2)
    count = draw(st.integers(0, 1_500))
    lengths = draw(st.lists(st.integers(-2, max_span), min_size=count, max_size=count))
    windows = sorted(
        (SeriesWindow(i, end - n * period) for i, n in enumerate(lengths)),
        key=lambda w: (w.start, w.position),
    )
    windows = [SeriesWindow(i, w.start) for i, w in enumerate(windows)]
    return windows, end, period, draw(STATS)


def queries_of(batches: list[Batch]) -> list[tuple[Call, Query]]:
    return [(call, q) for b in batches for call in b.calls for q in call.queries]


@settings(max_examples=150, deadline=None)
@given(workloads())
def test_plan_keeps_cloudwatch_limits_and_fetches_each_query_once(workload) -> None:
    windows, end, period, stats = workload
    batches = plan_batches(windows, end, period, stats)
    due = [w for w in windows if w.start < end]
    starts = {w.position: w.start for w in due}

    sent = [(q.position, q.statistic) for _, q in queries_of(batches)]
    assert sorted(sent) == sorted((w.position, s) for w in due for s in stats)
    assert [p for b in batches for p in b.positions] == [w.position for w in due]
    for batch in batches:
        ids = [q.query_id for call in batch.calls for q in call.queries]
        assert len(ids) == len(set(ids))
        assert all(ID.match(i) for i in ids)
        for call in batch.calls:
            assert 1 <= len(call.queries) <= MAX_QUERIES_PER_CALL
            assert call.end == end
            assert call.start % period == 0
            assert all(call.start <= starts[q.position] for q in call.queries)
            span = call.points_per_query(period)
            if span <= MAX_DATAPOINTS_PER_PAGE:
                assert len(call.queries) * span <= MAX_DATAPOINTS_PER_PAGE
            else:
                assert len(call.queries) == 1


@settings(max_examples=100, deadline=None)
@given(PERIODS, st.integers(1, 3_000), st.integers(1, 20_000), STATS)
def test_equal_windows_use_the_fewest_calls(period, series, span, stats) -> None:
    end = align_down(NOW, period)
    windows = [SeriesWindow(i, end - span * period) for i in range(series)]
    batches = plan_batches(windows, end, period, stats)
    calls = sum(len(b.calls) for b in batches)
    n = len(stats)
    capacity = min(MAX_QUERIES_PER_CALL, MAX_DATAPOINTS_PER_PAGE // span)
    if capacity >= n:
        # Whole series per call; at most n - 1 query slots of a call stay empty.
        assert calls == math.ceil(series / (capacity // n))
        if capacity >= 4 * n:
            assert calls <= 1.25 * minimum_calls(series * n, series * n * span) + 1
    else:
        assert calls == series * math.ceil(n / capacity)


def test_seven_hundred_series_two_statistics_take_three_calls() -> None:
    end = NOW - 300
    windows = [SeriesWindow(i, end - 3600) for i in range(700)]
    batches = plan_batches(windows, end, 300, ["Average", "Maximum"])
    calls = [c for b in batches for c in b.calls]
    assert [len(c.queries) for c in calls] == [500, 500, 400]


def test_a_batch_is_not_stretched_over_a_much_older_series() -> None:
    end = NOW
    old = SeriesWindow(0, end - 14 * 86400)
    recent = [SeriesWindow(i, end - 3600) for i in range(1, 4)]
    batches = plan_batches([old, *recent], end, 300, ["Average"])
    assert [b.positions for b in batches] == [(0,), (1, 2, 3)]
    assert batches[1].calls[0].start == end - 3600


def test_assemble_orders_filters_and_caps() -> None:
    end = 10_000
    batch = Batch(
        (SeriesWindow(0, 1_000), SeriesWindow(1, 2_000)),
        (
            Call(
                1_000,
                end,
                (
                    Query("q0", 0, "Average"),
                    Query("q1", 0, "Maximum"),
                    Query("q2", 1, "Average"),
                    Query("q3", 1, "Maximum"),
                ),
            ),
        ),
    )
    results = {
        "q0": QueryResult([1_000, 1_300, 1_600], [1.0, 2.0, 3.0]),
        "q1": QueryResult([1_000, 1_300, 1_600, 10_000], [5.0, float("nan"), 7.0, 9.0]),
        # Series 1 starts at 2,000: its earlier points came only because the call starts earlier.
        "q2": QueryResult([1_000, 2_000, 2_300, 2_600], [0.0, 1.0, 2.0, 3.0]),
        "q3": QueryResult([2_000, 2_300], [4.0, 5.0], truncated=True),
    }
    out = assemble(batch, results, end, ["Average", "Maximum"])
    assert out[0] == [
        DataPoint(1_000, "Average", 1.0),
        DataPoint(1_000, "Maximum", 5.0),
        DataPoint(1_300, "Average", 2.0),
        DataPoint(1_600, "Average", 3.0),
        DataPoint(1_600, "Maximum", 7.0),
    ]
    # Maximum of series 1 was cut short at 2,300: nothing after it is emitted for the series.
    assert out[1] == [
        DataPoint(2_000, "Average", 1.0),
        DataPoint(2_000, "Maximum", 4.0),
        DataPoint(2_300, "Average", 2.0),
        DataPoint(2_300, "Maximum", 5.0),
    ]
