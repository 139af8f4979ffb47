"""Progress lines: at most one every few seconds, always one at the end, with time left."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import pytest

from tap_cloudwatch_metrics import streams
from tap_cloudwatch_metrics.progress import ProgressMeter, describe
from tests.conftest import NOW as NOW_DT
from tests.fakes import FakeCloudWatch, make_fake_tap, no_network, run_sync

NOW = int(NOW_DT.timestamp())


def test_a_line_every_interval_and_at_the_end() -> None:
    meter = ProgressMeter(total_calls=10, started=100.0, interval=5.0)
    said = {
        t: meter.update(100.0 + t, calls, calls * 1000)
        for t, calls in zip(range(2, 21, 2), range(1, 11), strict=True)
    }
    reported = [t for t, line in said.items() if line]
    assert reported == [6, 12, 18, 20]
    assert said[20] is not None and said[20].endswith("done")


def test_the_line_says_calls_share_datapoints_rate_and_time_left() -> None:
    line = describe(calls_done=5, total_calls=20, datapoints=60_000, elapsed=30.0)
    assert line == (
        "Progress: GetMetricData calls 5/20 (25%), 60,000 datapoints in 30 s (2,000/s), "
        "about 1 min 30 s left"
    )
    assert "about 2 h 00 min left" in describe(1, 3, 10, 3600.0)
    assert "time left unknown" in describe(0, 3, 0, 1.0)


def progress_lines(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    clock: Callable[[FakeCloudWatch], Callable[[], float]],
) -> list[str]:
    """The progress lines of a run of 6 GetMetricData calls, with ``clock(fake)`` as the
    stream's monotonic clock."""
    no_network(monkeypatch)
    fake = FakeCloudWatch()
    monkeypatch.setattr(streams, "monotonic", clock(fake))
    fake.add_many("Fake/App", "CPU", 3000, start=NOW - 7200, end=NOW + 3600)
    config = {"start_date": "2026-01-15T11:00:00Z", "delay_seconds": 0, "fetch_units": False}
    with caplog.at_level(logging.INFO):
        run_sync(make_fake_tap(config, fake, now=NOW))
    assert fake.count("GetMetricData") == 6
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress:")]


def test_a_run_logs_progress_at_info_rate_limited(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = itertools.count(0.0, 1.5)  # each clock reading 1.5 s after the previous
    lines = progress_lines(monkeypatch, caplog, lambda _fake: lambda: next(ticks))
    assert 1 < len(lines) < 6  # fewer lines than calls, more than just the last
    assert lines[-1].startswith("Progress: GetMetricData calls 6/6 (100%), 36,000 datapoints")
    assert lines[-1].endswith("done")


def test_the_elapsed_time_includes_the_first_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The meter starts before the first GetMetricData call, not after it: a clock that moves
    10 s per call answered must report 6 calls in 60 s, not 50 s."""
    lines = progress_lines(
        monkeypatch, caplog, lambda fake: lambda: 10.0 * fake.count("GetMetricData")
    )
    assert "36,000 datapoints in 1 min 00 s (600/s), done" in lines[-1]


def test_short_durations_keep_a_decimal() -> None:
    assert "680 datapoints in 0.4 s (1,700/s), done" in describe(1, 1, 680, 0.4)
