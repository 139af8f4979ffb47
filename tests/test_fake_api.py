"""Behaviour moto cannot show, against the in-memory CloudWatch of ``tests/fakes.py``.

GetMetricData pagination and billing, PartialData (followed, and cut short), more than 500
queries, per-query failures and throttling with the STATE written before them, unit lookups,
10,000 series, and the indexed state manager against the SDK's own.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from typing import Any

import botocore.exceptions
import pytest
import singer_sdk.helpers._state as sdk_state
from singer_sdk.streams._state import StreamStateManager

from tap_cloudwatch_metrics.fetcher import CloudWatchDataError
from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.streams import MetricsStream
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    FAKE_CONFIG,
    QUERY_ID,
    FakeCloudWatch,
    Row,
    bookmarks,
    fast_retries,
    make_fake_tap,
    run_sync,
    state_violations,
)

UTC = dt.timezone.utc
NOW = int(NOW_DT.timestamp())  # 2026-01-15T12:00:00Z
HOUR = 3600
REGION = FAKE_CONFIG["region"]
NS = FAKE_CONFIG["cloudwatch_metrics_namespace"]


pytestmark = pytest.mark.usefixtures("offline")


def iso(epoch_seconds: int) -> str:
    return dt.datetime.fromtimestamp(epoch_seconds, UTC).isoformat()


def window(start: int, **extra: Any) -> dict[str, Any]:
    """Config for a run from ``start`` up to "now" (no delay: every closed period is due)."""
    return {"start_date": iso(start), "delay_seconds": 0, **extra}


def samples(start: int, end: int, salt: int = 0) -> dict[int, list[float]]:
    """Two or three samples a minute, off the minute, so every statistic differs."""
    out = {}
    for minute in range(start, end, 60):
        m = minute // 60 + salt
        values = [float(m % 7), float(m % 5) + 0.5]
        if m % 3 == 0:
            values.append(float(m % 11) * 2.25)
        out[minute + 7] = values
    return out


def series_id(metric_name: str, dimensions: dict[str, str], namespace: str = NS) -> str:
    dims = tuple(sorted(dimensions.items()))
    return Series(REGION, namespace, metric_name, dims).series_id


def rows_by_series(rows: set[Row] | list[Row]) -> Counter:
    return Counter((r.metric_name, r.dimensions) for r in rows)


# -- the fake itself: what it refuses, so the tests below prove the tap never sends it ----------


def _query(query_id: str = "q0", period: int = 300, **metric: Any) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NS, "MetricName": "CPU", "Dimensions": [], **metric},
            "Period": period,
            "Stat": "Average",
        },
    }


@pytest.mark.parametrize(
    ("queries", "code"),
    [
        ([_query(f"q{i}") for i in range(501)], "ValidationError"),
        ([_query("Q0")], "ValidationError"),
        ([_query("0q")], "ValidationError"),
        ([_query("q-0")], "ValidationError"),
        ([_query("q0"), _query("q0")], "ValidationError"),
        ([_query(period=90)], "InvalidParameterValue"),
        ([_query(period=7)], "InvalidParameterValue"),
    ],
    ids=["501-queries", "upper-id", "digit-id", "dash-id", "duplicate-id", "period-90", "period-7"],
)
def test_fake_refuses_what_cloudwatch_refuses(queries: list[dict], code: str) -> None:
    fake = FakeCloudWatch()
    client = fake.client()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.get_metric_data(MetricDataQueries=queries, StartTime=NOW - HOUR, EndTime=NOW)
    assert caught.value.response["Error"]["Code"] == code
    assert len(fake.rejected) == 1


def test_fake_pages_by_total_points_and_aligns_buckets_to_the_period() -> None:
    fake = FakeCloudWatch(page_points=5)
    fake.add_series(NS, "CPU", {"Host": "a"}, samples(NOW - 2 * HOUR, NOW))
    client = fake.client()
    queries = [
        _query("a", Dimensions=[{"Name": "Host", "Value": "a"}]),
        _query("b", Dimensions=[{"Name": "Host", "Value": "a"}]),
    ]
    request = {
        "MetricDataQueries": queries,
        "StartTime": NOW - HOUR + 130,
        "EndTime": NOW,
        "ScanBy": "TimestampAscending",
    }
    pages = []
    while True:
        page = client.get_metric_data(**request)
        pages.append(page)
        if "NextToken" not in page:
            break
        request["NextToken"] = page["NextToken"]
    # 11:02:10 rounds down to 11:02; the first bucket is the next multiple of 300 s: 11:05.
    stamps = [int(t.timestamp()) for p in pages for t in p["MetricDataResults"][0]["Timestamps"]]
    assert stamps == list(range(NOW - HOUR + 300, NOW, 300))
    assert len(pages) == math.ceil(2 * 11 / 5)
    assert [sum(len(r["Values"]) for r in p["MetricDataResults"]) for p in pages] == [5] * 4 + [2]
    assert [r["StatusCode"] for r in pages[0]["MetricDataResults"]] == ["PartialData"] * 2
    assert [r["StatusCode"] for r in pages[-1]["MetricDataResults"]] == ["Complete"] * 2
    # A continuation with other queries is refused.
    request["MetricDataQueries"] = queries[:1]
    request["NextToken"] = pages[0]["NextToken"]
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidNextToken"):
        client.get_metric_data(**request)


def test_fake_list_metrics_pages_filters_by_subset_and_hides_silent_series() -> None:
    fake = FakeCloudWatch(now=NOW)
    fake.add_many(NS, "CPU", 1234, start=NOW - HOUR, end=NOW)
    fake.add_series(NS, "Disk", {"Host": "a", "Device": "xvda"}, {NOW - 4 * HOUR: [1.0]})
    fake.add_series(NS, "Disk", {"Host": "a"}, {NOW - 20 * 86400: [1.0]})  # silent 20 days
    client = fake.client()
    pages = [client.list_metrics(Namespace=NS, MetricName="CPU")]
    while "NextToken" in pages[-1]:
        pages.append(
            client.list_metrics(Namespace=NS, MetricName="CPU", NextToken=pages[-1]["NextToken"])
        )
    assert [len(p["Metrics"]) for p in pages] == [500, 500, 234]
    disk = client.list_metrics(Namespace=NS, Dimensions=[{"Name": "Host", "Value": "a"}])
    assert disk["Metrics"] == [
        {
            "Namespace": NS,
            "MetricName": "Disk",
            "Dimensions": [{"Name": "Host", "Value": "a"}, {"Name": "Device", "Value": "xvda"}],
        }
    ]
    recent = client.list_metrics(Namespace=NS, MetricName="Disk", RecentlyActive="PT3H")
    assert recent["Metrics"] == []


def test_state_violations_reports_a_bookmark_ahead_of_its_records() -> None:
    record = {
        "series_id": "s1",
        "namespace": NS,
        "metric_name": "CPU",
        "dimensions": {},
        "statistic": "Average",
        "timestamp": iso(NOW - 600),
        "value": 1.0,
    }
    state = {
        "bookmarks": {
            "metrics": {
                "partitions": [
                    {"context": {"series_id": "s1"}, "replication_key_value": iso(NOW - 300)},
                    {"context": {"series_id": "s2"}, "replication_key_value": iso(NOW - 300)},
                ]
            }
        }
    }
    expected = {
        Row(NS, "CPU", (), "Average", NOW - 600, 1.0),
        Row(NS, "CPU", (), "Average", NOW - 300, 2.0),
    }
    problems = state_violations(
        [{"type": "RECORD", "record": record}, {"type": "STATE", "value": state}], expected
    )
    assert len(problems) == 3
    assert "newest record written is" in problems[0]
    assert f"rows not written before it: [('Average', {NOW - 300})]" in problems[1]
    assert "no record of the series" in problems[2]


# -- GetMetricData pagination and PartialData ---------------------------------------------------


def test_next_token_is_followed_24_pages_every_datapoint_once_and_billing_matches() -> None:
    """10 series x 2 statistics x 60 one-minute periods = 1,200 points; pages of 50 -> 24."""
    fake = FakeCloudWatch(page_points=50)
    for i in range(10):
        # Dimensions listed unsorted (as CloudWatch may): queries must still name the series.
        dims = {"Host": f"h{i}", "AvailabilityZone": f"az{i % 2}"}
        fake.add_series(NS, "CPU", dims, samples(NOW - 2 * HOUR, NOW + HOUR, i))
    stats = ["Average", "Maximum"]
    tap = make_fake_tap(window(NOW - HOUR, period=60, statistics=stats), fake, now=NOW)
    out = run_sync(tap)

    expected = fake.expected(NOW - HOUR, NOW, 60, stats)
    assert len(expected) == 1200
    assert Counter(out.rows()) == Counter(expected)  # every datapoint, each exactly once
    assert len(set(out.keys())) == 1200
    calls = fake.requests("GetMetricData")
    assert len(calls) == 24
    assert tap.usage.get_metric_data_calls == 24
    assert fake.billed_metric_requests == 24 * 20 == tap.usage.billed_metric_requests
    first = {k: v for k, v in calls[0].items() if k != "NextToken"}
    assert "NextToken" not in calls[0]
    for call in calls[1:]:
        assert "NextToken" in call
        assert {k: v for k, v in call.items() if k != "NextToken"} == first
    # The intermediate pages really answered PartialData for queries with more to come.
    answers = [c.result for c in fake.calls if c.operation == "GetMetricData"]
    assert all(a["statuses"].get("PartialData", 0) > 0 for a in answers[:-1])
    assert answers[-1]["statuses"] == {"Complete": 20}
    assert [a["points"] for a in answers] == [50] * 24


def test_partial_data_without_next_token_caps_the_series_and_the_next_run_continues() -> None:
    """A's Maximum is cut after 11:30: A stops at 11:30 for both statistics; C gets nothing."""
    fake = FakeCloudWatch()
    dims = {name: {"Host": name} for name in ("a", "b", "c")}
    for salt, d in enumerate(dims.values()):
        fake.add_series(NS, "CPU", d, samples(NOW - 2 * HOUR, NOW + 2 * HOUR, salt))
    stats = ["Average", "Maximum"]
    cut = NOW - 30 * 60
    fake.truncate(cut, metric_name="CPU", dimensions=dims["a"], statistic="Maximum")
    fake.truncate(NOW - 2 * HOUR, metric_name="CPU", dimensions=dims["c"])
    config = window(NOW - HOUR, statistics=stats)
    first = run_sync(make_fake_tap(config, fake, now=NOW))

    answered = [c.result["statuses"] for c in fake.calls if c.operation == "GetMetricData"]
    assert answered == [{"Complete": 3, "PartialData": 3}]  # one page, no token
    expected = fake.expected(NOW - HOUR, NOW, 300, stats)
    by_host = {
        d["Host"]: {r for r in expected if r.dimensions == (("Host", d["Host"]),)}
        for d in dims.values()
    }
    assert set(first.rows()) == {r for r in by_host["a"] if r.timestamp <= cut} | by_host["b"]
    marks = bookmarks(first.final_state)
    assert marks == {
        series_id("CPU", dims["a"]): cut,
        series_id("CPU", dims["b"]): NOW - 300,
    }
    assert state_violations(first.messages, expected) == []

    fake.clear_faults()
    later = NOW + HOUR
    second = run_sync(make_fake_tap(config, fake, first.final_state, now=later))
    whole = fake.expected(NOW - HOUR, later, 300, stats)
    assert not set(first.keys()) & set(second.keys())  # no repeat
    assert Counter(first.rows() + second.rows()) == Counter(whole)  # no gap
    assert bookmarks(second.final_state) == {
        series_id("CPU", d): later - 300 for d in dims.values()
    }


# -- more than 500 queries ----------------------------------------------------------------------


def test_700_series_2_statistics_take_exactly_3_calls_of_at_most_500_queries() -> None:
    """1,400 queries over 12 periods: ceil(1400 / 500) = 3 GetMetricData calls, billed 1,400."""
    fake = FakeCloudWatch()
    fake.add_many(NS, "CPU", 700, start=NOW - 2 * HOUR, end=NOW + HOUR)
    stats = ["Average", "Sum"]
    tap = make_fake_tap(window(NOW - HOUR, statistics=stats, fetch_units=False), fake, now=NOW)
    out = run_sync(tap)

    calls = fake.requests("GetMetricData")
    assert len(calls) == 3 == math.ceil(1400 / 500)
    assert sum(len(c["MetricDataQueries"]) for c in calls) == 1400
    assert fake.billed_metric_requests == 1400 == tap.usage.billed_metric_requests
    for call in calls:
        ids = [q["Id"] for q in call["MetricDataQueries"]]
        assert len(ids) <= 500
        assert len(set(ids)) == len(ids)
        assert all(QUERY_ID.match(i) for i in ids)
        assert "NextToken" not in call
    assert fake.rejected == []
    assert fake.count("ListMetrics") == 2 == tap.usage.list_metrics_calls  # 500 + 200
    expected = fake.expected(NOW - HOUR, NOW, 300, stats)
    assert len(expected) == 700 * 2 * 12
    assert Counter(out.rows()) == Counter(expected)
    assert set(rows_by_series(out.rows()).values()) == {24}
    assert len(rows_by_series(out.rows())) == 700


def test_a_rerun_with_nothing_due_makes_no_get_metric_data_call_and_keeps_the_state() -> None:
    fake = FakeCloudWatch()
    fake.add_many(NS, "CPU", 3, start=NOW - 2 * HOUR, end=NOW + 2 * HOUR)
    first = run_sync(make_fake_tap({}, fake, now=NOW))
    assert len(first.records) == 3 * 11  # default: 11:00 up to the period closed at 11:55
    fake.reset_calls()
    again = run_sync(make_fake_tap({}, fake, first.final_state, now=NOW + 299))

    assert [c.operation for c in fake.calls] == ["ListMetrics"]
    assert again.records == []
    assert again.final_state == first.final_state


def test_no_series_means_no_get_metric_data_and_a_clean_empty_sync() -> None:
    fake = FakeCloudWatch()
    fake.add_series("Other/Namespace", "CPU", {"Host": "a"}, samples(NOW - HOUR, NOW))
    tap = make_fake_tap(window(NOW - HOUR), fake, now=NOW)
    out = run_sync(tap)

    assert [c.operation for c in fake.calls] == ["ListMetrics"]
    assert out.records == []
    assert {m["type"] for m in out.messages} == {"SCHEMA", "STATE"}
    # Only the run's reach is kept: series that appear later start near it.
    assert out.final_state == {"bookmarks": {"metrics": {"last_run_end": iso(NOW)}}}
    assert tap.usage.get_metric_data_calls == 0
    assert tap.usage.billed_metric_requests == 0


# -- failures: the sync raises, and no STATE claims rows that were not written ------------------


def _six_hundred(fake: FakeCloudWatch) -> tuple[list[str], dict[str, str]]:
    """600 series; by series_id order the last one lands in the second batch (500 + 100)."""
    fake.add_many(NS, "CPU", 600, start=NOW - 2 * HOUR, end=NOW + 2 * HOUR)
    dims = {series_id("CPU", {"Index": f"{i:06d}"}): f"{i:06d}" for i in range(600)}
    return sorted(dims), dims


@pytest.mark.parametrize("status", ["InternalError", "Forbidden"])
def test_a_failed_query_fails_the_run_and_no_state_is_ahead_of_the_records(
    status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", 700)
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", 0)
    fake = FakeCloudWatch()
    order, index_of = _six_hundred(fake)
    bad = {"Index": index_of[order[-1]]}
    fake.force_status(status, metric_name="CPU", dimensions=bad)
    config = window(NOW - HOUR, fetch_units=False)
    failed = run_sync(make_fake_tap(config, fake, now=NOW), expect_error=True)

    assert isinstance(failed.error, CloudWatchDataError)
    assert f"answered {status}" in str(failed.error)
    assert f"Index={bad['Index']}" in str(failed.error)
    assert len(failed.records) == 500 * 12  # the first batch, complete
    expected = fake.expected(NOW - HOUR, NOW, 300, ["Average"])
    assert state_violations(failed.messages, expected) == []
    # A STATE every 700 records bookmarks the series finished by then (12 rows each); the one
    # being written keeps its old bookmark until its last row.
    marked = [len(bookmarks(s)) for s in failed.states]
    assert marked == [n // 12 for n in range(700, 6001, 700)]

    # Resumed from the last STATE written, once CloudWatch answers: nothing is missing.
    fake.clear_faults()
    resume_from = failed.states[-1]
    resumed = run_sync(make_fake_tap(config, fake, resume_from, now=NOW))
    assert state_violations(resumed.messages, expected, resume_from) == []
    marks = bookmarks(resume_from)
    assert all(
        r.timestamp > marks.get(k[0], 0)
        for r, k in zip(resumed.rows(), resumed.keys(), strict=True)
    )
    assert set(failed.rows()) | set(resumed.rows()) == expected


def test_throttling_past_the_retries_fails_the_run_and_no_state_is_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_retries(monkeypatch, attempts=3)
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", 700)
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", 0)
    fake = FakeCloudWatch()
    _six_hundred(fake)
    fake.fail_next("GetMetricData", code="Throttling", status=400, times=None, after=1)
    # One call at a time, so "the first request succeeds" means the first planned call does
    # (test_pipeline.py covers a failing call among concurrent ones).
    config = window(NOW - HOUR, fetch_units=False, max_workers=1)
    failed = run_sync(make_fake_tap(config, fake, now=NOW), expect_error=True)

    assert isinstance(failed.error, botocore.exceptions.ClientError)
    assert failed.error.response["Error"]["Code"] == "Throttling"
    # One answered call, then the second batch: max_attempts = 3 attempts in all.
    statuses = [c.status for c in fake.calls if c.operation == "GetMetricData"]
    assert statuses == [200, 400, 400, 400]
    assert len(failed.records) == 500 * 12
    expected = fake.expected(NOW - HOUR, NOW, 300, ["Average"])
    assert state_violations(failed.messages, expected) == []
    assert len(bookmarks(failed.states[-1])) == 5600 // 12


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [
        ("GetMetricData", "Throttling", 400),
        ("GetMetricData", "ThrottlingException", 400),
        ("GetMetricData", "TooManyRequestsException", 429),
        ("GetMetricData", "InternalServiceError", 500),
        ("GetMetricData", "ServiceUnavailable", 503),
        ("ListMetrics", "Throttling", 400),
        ("GetMetricStatistics", "Throttling", 400),
    ],
)
def test_a_fault_that_clears_after_2_attempts_is_retried_transparently(
    operation: str, code: str, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake = FakeCloudWatch()
    for i in range(3):
        fake.add_series(
            NS, "CPU", {"Host": f"h{i}"}, samples(NOW - 2 * HOUR, NOW, i), unit="Percent"
        )
    fake.fail_next(operation, code=code, status=status, times=2)
    tap = make_fake_tap(window(NOW - HOUR, statistics=["Average", "p90"]), fake, now=NOW)
    out = run_sync(tap)

    assert Counter(out.rows()) == Counter(fake.expected(NOW - HOUR, NOW, 300, ["Average", "p90"]))
    assert {r["unit"] for r in out.records} == {"Percent"}
    failed = [c for c in fake.calls if not c.ok]
    assert [(c.operation, c.error) for c in failed] == [(operation, code)] * 2
    assert fake.count("GetMetricData") == 1 == tap.usage.get_metric_data_calls
    assert fake.billed_metric_requests == 6 == tap.usage.billed_metric_requests


# -- units ----------------------------------------------------------------------------------


def test_units_one_lookup_per_series_with_data_then_cached_in_state() -> None:
    fake = FakeCloudWatch()
    units = {"a": "Percent", "b": "Bytes", "c": "Count/Second", "d": "Milliseconds"}
    for salt, (host, unit) in enumerate(units.items()):
        # d reports only from 12:00: nothing in the first run's window.
        start = NOW if host == "d" else NOW - 2 * HOUR
        fake.add_series(
            NS, "Latency", {"Host": host}, samples(start, NOW + 2 * HOUR, salt), unit=unit
        )
    config = window(NOW - HOUR)
    first = run_sync(make_fake_tap(config, fake, now=NOW))

    looked_up = [c["Dimensions"] for c in fake.requests("GetMetricStatistics")]
    assert sorted(d[0]["Value"] for d in looked_up) == ["a", "b", "c"]
    assert first.tap.usage.get_metric_statistics_calls == 3
    assert {(r["dimensions"]["Host"], r["unit"]) for r in first.records} == {
        (h, u) for h, u in units.items() if h != "d"
    }

    fake.reset_calls()
    second = run_sync(make_fake_tap(config, fake, first.final_state, now=NOW + HOUR))
    assert [c["Dimensions"] for c in fake.requests("GetMetricStatistics")] == [
        [{"Name": "Host", "Value": "d"}]
    ]
    assert {(r["dimensions"]["Host"], r["unit"]) for r in second.records} == set(units.items())
    partitions = second.final_state["bookmarks"]["metrics"]["partitions"]
    assert {p["context"]["series_id"]: p["unit"] for p in partitions} == {
        series_id("Latency", {"Host": h}): u for h, u in units.items()
    }

    fake.reset_calls()
    third = run_sync(make_fake_tap(config, fake, second.final_state, now=NOW + 2 * HOUR))
    assert fake.count("GetMetricStatistics", answered_only=False) == 0
    assert {(r["dimensions"]["Host"], r["unit"]) for r in third.records} == set(units.items())


def test_fetch_units_false_makes_no_lookup_and_leaves_unit_null() -> None:
    fake = FakeCloudWatch()
    fake.add_series(NS, "CPU", {"Host": "a"}, samples(NOW - 2 * HOUR, NOW))
    out = run_sync(make_fake_tap(window(NOW - HOUR, fetch_units=False), fake, now=NOW))
    assert len(out.records) == 12
    assert {r["unit"] for r in out.records} == {None}
    assert fake.count("GetMetricStatistics", answered_only=False) == 0
    assert out.tap.usage.get_metric_statistics_calls == 0


def test_access_denied_on_unit_lookups_completes_with_null_units_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeCloudWatch()
    for i in range(20):
        fake.add_series(NS, "CPU", {"Host": f"h{i:02d}"}, samples(NOW - 2 * HOUR, NOW, i))
    fake.fail_next(
        "GetMetricStatistics",
        code="AccessDenied",
        status=403,
        times=None,
        type_name="AccessDeniedException",
    )
    # Lookups run on 8 threads; a little latency makes them overlap as they do against AWS.
    fake.latency["GetMetricStatistics"] = 0.05
    caplog.set_level(logging.WARNING)
    out = run_sync(make_fake_tap(window(NOW - HOUR), fake, now=NOW))

    assert len(out.records) == 20 * 12
    assert {r["unit"] for r in out.records} == {None}
    attempts = fake.count("GetMetricStatistics", answered_only=False)
    assert attempts == out.tap.usage.get_metric_statistics_calls
    warnings = [r for r in caplog.records if "GetMetricStatistics permission" in r.getMessage()]
    assert len(warnings) == 1, f"{len(warnings)} warnings for {attempts} denied lookups"


# -- scale: 10,000 series and the state index ---------------------------------------------------


def test_10000_series_no_linear_state_lookup_and_every_partition_bookmarked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scans = Counter()
    original = sdk_state._find_in_partitions_list

    def counting(partitions: list[dict], context: dict) -> dict | None:
        scans["calls"] += 1
        return original(partitions, context)

    monkeypatch.setattr(sdk_state, "_find_in_partitions_list", counting)
    fake = FakeCloudWatch()
    fake.add_many(NS, "CPU", 10_000, start=NOW - HOUR, end=NOW)
    tap = make_fake_tap(window(NOW - HOUR, fetch_units=False), fake, now=NOW)
    out = run_sync(tap)

    assert scans["calls"] == 0
    assert len(out.records) == 10_000 * 12
    assert fake.count("GetMetricData") == 20 == tap.usage.get_metric_data_calls
    marks = bookmarks(out.final_state)
    assert len(marks) == 10_000
    assert set(marks.values()) == {NOW - 300}
    assert len(out.final_state["bookmarks"]["metrics"]["partitions"]) == 10_000


class _SdkStateManager(StreamStateManager):
    """The SDK's manager; ``find_context_state`` (used by the stream) via the SDK's lookup."""

    def find_context_state(self, context: dict) -> dict | None:
        return sdk_state.get_state_if_exists(self.tap_state, self.stream_name, context)


def _sdk_state_manager(stream: MetricsStream) -> StreamStateManager:
    if stream._state_manager is None:
        stream._state_manager = _SdkStateManager(
            tap_name=stream.tap_name,
            stream_name=stream.name,
            tap_state=stream._tap_state,
            state_partitioning_keys=stream.state_partitioning_keys,
            is_sorted=stream.is_sorted,
            check_sorted=stream.check_sorted,
        )
    return stream._state_manager


def _without_signposts(runs: list[list[dict]]) -> list[list[dict]]:
    """The SDK's signpost is the real wall-clock time of the run: the only expected difference."""
    out = []
    for states in runs:
        cleaned = []
        for state in states:
            copy = json.loads(json.dumps(state))
            copy.get("bookmarks", {}).get("metrics", {}).pop("replication_key_signpost", None)
            cleaned.append(copy)
        out.append(cleaned)
    return out


def test_indexed_state_manager_writes_the_same_states_as_the_sdks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", 7)
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", 0)

    def two_runs() -> list[list[dict]]:
        fake = FakeCloudWatch()
        for i in range(6):
            start = NOW - 2 * HOUR + (i % 3) * 900  # different starts, different batches
            fake.add_series(NS, "CPU", {"Host": f"h{i}"}, samples(start, NOW + 2 * HOUR, i))
        config = {"statistics": ["Average", "Maximum"]}  # default start: history_start kept
        first = run_sync(make_fake_tap(config, fake, now=NOW))
        fake.add_series(NS, "CPU", {"Host": "late"}, samples(NOW, NOW + 2 * HOUR, 9))
        second = run_sync(make_fake_tap(config, fake, first.final_state, now=NOW + HOUR))
        return [first.states, second.states]

    indexed = two_runs()
    with monkeypatch.context() as patched:
        patched.setattr(MetricsStream, "state_manager", property(_sdk_state_manager))
        sdk = two_runs()
    assert _without_signposts(indexed) == _without_signposts(sdk)
    assert len(indexed[0]) > 5
    assert len(bookmarks(indexed[1][-1])) == 7
    assert "history_start" in indexed[0][-1]["bookmarks"]["metrics"]


# -- discovery details moto gets wrong ----------------------------------------------------------


def test_dimensions_setting_keeps_only_the_exact_set_of_list_metrics_subset_matches() -> None:
    fake = FakeCloudWatch()
    fake.add_series(NS, "CPU", {"InstanceId": "i-1"}, samples(NOW - 2 * HOUR, NOW, 1))
    fake.add_series(NS, "CPU", {"InstanceId": "i-1", "Device": "xvda"}, samples(NOW - HOUR, NOW))
    fake.add_series(NS, "CPU", {"InstanceId": "i-2"}, samples(NOW - HOUR, NOW, 2))
    out = run_sync(
        make_fake_tap(window(NOW - HOUR, dimensions={"InstanceId": "i-1"}), fake, now=NOW)
    )

    assert fake.requests("ListMetrics")[0]["Dimensions"] == [{"Name": "InstanceId", "Value": "i-1"}]
    assert fake.calls[0].result["metrics"] == 2  # the subset match CloudWatch answers
    assert Counter(out.rows()) == Counter(
        fake.expected(NOW - HOUR, NOW, 300, ["Average"], dimensions={"InstanceId": "i-1"})
    )
    assert len(out.records) == 12


def test_an_unaligned_start_date_gives_buckets_on_multiples_of_the_period() -> None:
    fake = FakeCloudWatch()
    fake.add_series(NS, "CPU", {"Host": "a"}, samples(NOW - 2 * HOUR, NOW))
    start = NOW - HOUR + 150  # 11:02:30
    out = run_sync(make_fake_tap(window(start, period=600), fake, now=NOW))

    stamps = [r.timestamp for r in out.rows()]
    assert stamps == list(range(NOW - HOUR + 600, NOW, 600))  # 11:10 ... 11:50
    assert Counter(out.rows()) == Counter(fake.expected(start, NOW, 600, ["Average"]))


def test_a_series_that_appears_after_an_empty_first_run_starts_at_the_first_runs_start() -> None:
    """Default start_date is "60 minutes before the first run", kept in state for later series.

    A first run that found no series stores nothing, so a series appearing later starts 60
    minutes before the run that first sees it, and its earlier data is never fetched.
    """
    fake = FakeCloudWatch()
    first = run_sync(make_fake_tap({}, fake, now=NOW))
    assert first.records == []
    fake.add_series(NS, "CPU", {"Host": "a"}, samples(NOW - 30 * 60, NOW + 3 * HOUR))
    later = NOW + 2 * HOUR
    second = run_sync(make_fake_tap({}, fake, first.final_state, now=later))

    end = later - 300 - (later - 300) % 300  # last period closed delay_seconds (300) ago
    expected = fake.expected(NOW - HOUR, end, 300, ["Average"])
    assert min(r.timestamp for r in expected) == NOW - 30 * 60
    assert Counter(second.rows()) == Counter(expected)
