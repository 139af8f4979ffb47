"""Concurrent GetMetricData calls (``max_workers``): overlap, bounds, order and failures.

The fake answers at botocore's ``before-send`` with a per-operation latency, and records how
many requests of an operation it was answering at once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tap_cloudwatch_metrics.fetcher import CloudWatchDataError
from tap_cloudwatch_metrics.pipeline import CallPipeline
from tap_cloudwatch_metrics.streams import MetricsStream
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    FakeCloudWatch,
    bookmarks,
    make_fake_tap,
    run_sync,
    state_violations,
)

NOW = int(NOW_DT.timestamp())
HOUR = 3600
NS = "Fake/App"


pytestmark = pytest.mark.usefixtures("offline")


def _config(**extra: Any) -> dict[str, Any]:
    start = NOW_DT.replace(hour=11).isoformat()
    return {"start_date": start, "delay_seconds": 0, "fetch_units": False, **extra}


def _fake(series: int = 2600) -> FakeCloudWatch:
    """``series`` series x 12 periods: 2,600 make six calls of at most 500 queries."""
    fake = FakeCloudWatch()
    fake.add_many(NS, "CPU", series, start=NOW - 2 * HOUR, end=NOW + HOUR)
    return fake


# -- the pipeline on its own -----------------------------------------------------------------


def test_answers_come_back_in_plan_order_whatever_order_they_finish_in() -> None:
    def fetch(index: int) -> int:
        time.sleep(0.02 * (5 - index))  # later calls finish first
        return index * 10

    pipeline = CallPipeline(fetch, 6, max_workers=4)
    taken = [pipeline.take() for _ in range(6)]
    assert [t.index for t in taken] == list(range(6))
    assert [t.value for t in taken] == [0, 10, 20, 30, 40, 50]
    with pytest.raises(IndexError):
        pipeline.take()


def test_no_more_than_max_workers_calls_are_fetched_ahead() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def fetch(index: int) -> int:
        with lock:
            started.append(index)
        return index

    pipeline = CallPipeline(fetch, 20, max_workers=3)
    pipeline.take()
    time.sleep(0.05)
    # Call 0 taken; calls 1..3 may be in flight; nothing beyond.
    assert max(started) <= 3
    assert pipeline.in_flight <= 3
    pipeline.close()


def test_an_error_is_raised_at_its_call_s_turn_and_later_calls_are_cancelled() -> None:
    gate = threading.Event()
    started: list[int] = []

    def fetch(index: int) -> int:
        started.append(index)
        if index == 1:
            msg = "call 1 failed"
            raise RuntimeError(msg)
        if index >= 2:
            gate.wait(1)
        return index

    pipeline = CallPipeline(fetch, 50, max_workers=2)
    assert pipeline.take().value == 0
    with pytest.raises(RuntimeError, match="call 1 failed"):
        pipeline.take()
    gate.set()
    time.sleep(0.05)
    assert max(started) <= 3  # calls queued behind the failure never started
    with pytest.raises(IndexError):
        pipeline.take()


def test_one_worker_fetches_inline_without_threads() -> None:
    threads: set[str] = set()

    def fetch(index: int) -> int:
        threads.add(threading.current_thread().name)
        return index

    pipeline = CallPipeline(fetch, 3, max_workers=1)
    assert [pipeline.take().value for _ in range(3)] == [0, 1, 2]
    assert threads == {threading.current_thread().name}


# -- the tap with the pipeline --------------------------------------------------------------


def test_concurrent_calls_overlap_and_stay_within_max_workers() -> None:
    fake = _fake()
    fake.latency["GetMetricData"] = 0.15
    out = run_sync(make_fake_tap(_config(max_workers=3), fake, now=NOW))

    assert fake.count("GetMetricData") == 6
    # Three requests were being answered at the same moment, never four.
    assert fake.max_in_flight["GetMetricData"] == 3
    assert len(out.records) == 2600 * 12


def test_one_worker_sends_one_call_at_a_time() -> None:
    fake = _fake()
    fake.latency["GetMetricData"] = 0.02
    run_sync(make_fake_tap(_config(max_workers=1), fake, now=NOW))
    assert fake.max_in_flight["GetMetricData"] == 1


def test_rows_and_state_are_the_same_with_one_worker_or_many() -> None:
    outputs = {}
    for workers in (1, 4):
        fake = _fake(1200)
        fake.latency["GetMetricData"] = 0.01
        outputs[workers] = run_sync(make_fake_tap(_config(max_workers=workers), fake, now=NOW))
    assert outputs[1].keys() == outputs[4].keys()
    assert outputs[1].rows() == outputs[4].rows()
    assert outputs[1].states == outputs[4].states


def test_a_failed_call_among_concurrent_ones_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Call 3 of 6 fails while calls 4 to 6 are fetched: rows of 1 and 2 are out and
    bookmarked, nothing after; a rerun from the last STATE completes the set."""
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", 1000)
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", 0)
    fake = _fake()
    fake.latency["GetMetricData"] = 0.01
    first = run_sync(make_fake_tap(_config(max_workers=1), _fake(), now=NOW))
    third_call_series = {r["dimensions"]["Index"] for r in first.records[12000:18000]}
    failing = sorted(third_call_series)[250]
    fake.force_status("InternalError", metric_name="CPU", dimensions={"Index": failing})
    config = _config(max_workers=4)

    failed = run_sync(make_fake_tap(config, fake, now=NOW), expect_error=True)
    assert isinstance(failed.error, CloudWatchDataError)
    assert len(failed.records) == 2 * 500 * 12
    assert fake.count("GetMetricData") >= 3
    expected = fake.expected(NOW - HOUR, NOW, 300, ["Average"])
    assert state_violations(failed.messages, expected) == []
    assert len(bookmarks(failed.states[-1])) <= 1000

    fake.clear_faults()
    resumed = run_sync(make_fake_tap(config, fake, failed.states[-1], now=NOW))
    assert state_violations(resumed.messages, expected, failed.states[-1]) == []
    assert set(failed.rows()) | set(resumed.rows()) == expected
