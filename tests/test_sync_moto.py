"""End to end against moto: discovery, values, filters, state, late and new series."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import statistics as pystats
from contextlib import redirect_stdout
from typing import Any

import pytest

from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.streams import MetricsStream
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import BASE_CONFIG, NOW, REGION, SECRET, put_points
from tests.singer_io import bookmarks, epoch, parse_messages, run_sync

UTC = dt.timezone.utc
NS = BASE_CONFIG["cloudwatch_metrics_namespace"]
MINUTE = dt.timedelta(minutes=1)
ALL_STATS = ["Average", "Sum", "SampleCount", "Maximum", "Minimum"]


def minutes(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += MINUTE
    return out


def samples_for(when: dt.datetime, salt: int = 0) -> list[float]:
    """Two or three distinct samples a minute, so every statistic differs."""
    m = int(when.timestamp() // 60) + salt
    return [float(m % 7), float(m % 5) + 0.5] + ([float(m % 11) * 2] if m % 3 == 0 else [])


def seed(
    client: Any,
    metric: str,
    dims: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
    salt: int = 0,
    unit: str = "Percent",
) -> dict[dt.datetime, list[float]]:
    points = {t: samples_for(t, salt) for t in minutes(start, end)}
    put_points(client, NS, metric, dims, points, unit=unit)
    return points


def expected_rows(
    points: dict[dt.datetime, list[float]],
    start: dt.datetime,
    end: dt.datetime,
    stats: list[str],
    period: int = 300,
) -> dict[tuple[str, str], float]:
    funcs = {
        "Average": pystats.fmean,
        "Sum": sum,
        "SampleCount": len,
        "Maximum": max,
        "Minimum": min,
    }
    out: dict[tuple[str, str], float] = {}
    t = start
    while t < end:
        bucket = [
            v
            for when, vals in points.items()
            if t <= when < t + dt.timedelta(seconds=period)
            for v in vals
        ]
        if bucket:
            for stat in stats:
                out[(t.isoformat(), stat)] = float(funcs[stat](bucket))
        t += dt.timedelta(seconds=period)
    return out


def normal_ts(value: str) -> str:
    return dt.datetime.fromisoformat(value).astimezone(UTC).isoformat()


def rows_of(records: list[dict], series_id: str) -> dict[tuple[str, str], float]:
    return {
        (normal_ts(r["timestamp"]), r["statistic"]): r["value"]
        for r in records
        if r["series_id"] == series_id
    }


def sid(dims: dict[str, str], metric: str = "CPUUtilization") -> str:
    return Series.from_api(
        REGION,
        {
            "Namespace": NS,
            "MetricName": metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
        },
    ).series_id


def test_first_run_emits_the_last_hour_of_closed_periods_with_every_statistic(cloudwatch, clock):
    points = seed(
        cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, NOW - dt.timedelta(hours=2), NOW
    )
    result = run_sync({**BASE_CONFIG, "statistics": ALL_STATS})

    # Default start: 60 minutes before now; end: last period closed 5 minutes (delay) ago.
    first, end = NOW - dt.timedelta(minutes=60), NOW - dt.timedelta(minutes=5)
    expected = expected_rows(points, first, end, ALL_STATS)
    assert len(expected) == 11 * 5
    got = rows_of(result.records, sid({"InstanceId": "i-1"}))
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    record = result.records[0]
    assert record["namespace"] == NS
    assert record["metric_name"] == "CPUUtilization"
    assert record["dimensions"] == {"InstanceId": "i-1"}
    assert record["dimensions_key"] == '{"InstanceId":"i-1"}'
    assert record["region"] == REGION
    assert record["period"] == 300
    assert record["unit"] == "Percent"
    assert len(set(result.keys())) == len(result.keys())
    assert bookmarks(result.final_state) == {
        sid({"InstanceId": "i-1"}): int((end - dt.timedelta(minutes=5)).timestamp())
    }


def test_discovery_deduplicates_and_keeps_every_dimension_set(cloudwatch, clock):
    start, end = NOW - dt.timedelta(minutes=30), NOW
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, start, end)
    seed(cloudwatch, "DiskReadOps", {"InstanceId": "i-1", "Device": "xvda"}, start, end, salt=1)
    seed(cloudwatch, "QueueDepth", {}, start, end, salt=2, unit="Count")
    result = run_sync(BASE_CONFIG)

    series_ids = {r["series_id"] for r in result.records}
    assert series_ids == {
        sid({"InstanceId": "i-1"}),
        sid({"Device": "xvda", "InstanceId": "i-1"}, "DiskReadOps"),
        sid({}, "QueueDepth"),
    }
    assert result.tap.usage.get_metric_data_calls == 1
    dims = {r["metric_name"]: r["dimensions"] for r in result.records}
    assert dims == {
        "CPUUtilization": {"InstanceId": "i-1"},
        "DiskReadOps": {"Device": "xvda", "InstanceId": "i-1"},
        "QueueDepth": {},
    }
    assert len(result.keys()) == len(set(result.keys()))


def test_dimensions_selects_exactly_that_dimension_set(cloudwatch, clock):
    start, end = NOW - dt.timedelta(minutes=30), NOW
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, start, end)
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-2"}, start, end, salt=3)
    seed(cloudwatch, "DiskReadOps", {"InstanceId": "i-1", "Device": "xvda"}, start, end)
    result = run_sync({**BASE_CONFIG, "dimensions": {"InstanceId": "i-1"}})

    assert {r["series_id"] for r in result.records} == {sid({"InstanceId": "i-1"})}
    assert result.records


def test_resume_from_state_has_no_gap_and_no_repeat(cloudwatch, clock):
    a, b = {"InstanceId": "i-1"}, {"InstanceId": "i-2"}
    seed(cloudwatch, "CPUUtilization", a, NOW - dt.timedelta(hours=2), NOW + dt.timedelta(hours=1))
    seed(
        cloudwatch,
        "CPUUtilization",
        b,
        NOW - dt.timedelta(hours=2),
        NOW + dt.timedelta(hours=1),
        salt=5,
    )
    config = {**BASE_CONFIG, "statistics": ["Average", "Maximum"]}
    first = run_sync(config)
    clock(NOW + dt.timedelta(minutes=37))
    second = run_sync(config, state=first.final_state)
    clock(NOW + dt.timedelta(minutes=37))
    whole = run_sync({**config, "start_date": (NOW - dt.timedelta(minutes=60)).isoformat()})

    assert not set(first.keys()) & set(second.keys())
    assert sorted(first.keys() + second.keys()) == sorted(whole.keys())
    # The second run covers 11:55 up to the period that closed 5 minutes before 12:37.
    stamps = sorted({normal_ts(r["timestamp"]) for r in second.records})
    assert stamps[0] == (NOW - dt.timedelta(minutes=5)).isoformat()
    assert stamps[-1] == (NOW + dt.timedelta(minutes=25)).isoformat()


def test_a_late_series_keeps_its_own_cursor(cloudwatch, clock):
    punctual, late = {"InstanceId": "i-1"}, {"InstanceId": "i-late"}
    seed(cloudwatch, "CPUUtilization", punctual, NOW - dt.timedelta(hours=1), NOW)
    seed(
        cloudwatch,
        "CPUUtilization",
        late,
        NOW - dt.timedelta(hours=1),
        NOW - dt.timedelta(minutes=30),
    )
    first = run_sync(BASE_CONFIG)
    assert bookmarks(first.final_state)[sid(late)] == int((NOW - 35 * MINUTE).timestamp())

    # The late series' samples for 11:30-11:55 arrive after the first run.
    late_points = seed(cloudwatch, "CPUUtilization", late, NOW - dt.timedelta(minutes=30), NOW)
    clock(NOW + dt.timedelta(minutes=10))
    second = run_sync(BASE_CONFIG, state=first.final_state)

    got = rows_of(second.records, sid(late))
    expected = expected_rows(late_points, NOW - dt.timedelta(minutes=30), NOW, ["Average"])
    assert got.keys() == expected.keys()
    # The punctual series (data up to 11:59) only adds its 11:55 period.
    punctual_stamps = {
        normal_ts(r["timestamp"]) for r in second.records if r["series_id"] == sid(punctual)
    }
    assert punctual_stamps == {(NOW - dt.timedelta(minutes=5)).isoformat()}


def test_a_series_that_appears_later_gets_its_history_from_the_first_run(cloudwatch, clock):
    old, new = {"InstanceId": "i-1"}, {"InstanceId": "i-new"}
    seed(
        cloudwatch, "CPUUtilization", old, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=3)
    )
    first = run_sync(BASE_CONFIG)
    assert sid(new) not in bookmarks(first.final_state)

    # Two hours later a new instance shows up with data since 11:20.
    points = seed(
        cloudwatch,
        "CPUUtilization",
        new,
        NOW - dt.timedelta(minutes=40),
        NOW + dt.timedelta(hours=2),
        salt=9,
    )
    clock(NOW + dt.timedelta(hours=2))
    second = run_sync(BASE_CONFIG, state=first.final_state)

    end = NOW + dt.timedelta(hours=2) - dt.timedelta(minutes=5)
    expected = expected_rows(points, NOW - dt.timedelta(minutes=60), end, ["Average"])
    assert rows_of(second.records, sid(new)).keys() == expected.keys()
    assert min(k[0] for k in expected) == (NOW - dt.timedelta(minutes=40)).isoformat()
    old_stamps = sorted(
        normal_ts(r["timestamp"]) for r in second.records if r["series_id"] == sid(old)
    )
    assert old_stamps[0] == (NOW - dt.timedelta(minutes=5)).isoformat()


def test_empty_namespace_warns_and_syncs_nothing(cloudwatch, clock, caplog):
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, NOW - dt.timedelta(hours=1), NOW)
    caplog.set_level(logging.WARNING)
    result = run_sync({**BASE_CONFIG, "cloudwatch_metrics_namespace": "Nothing/Here"})

    assert result.records == []
    assert result.tap.usage.list_metrics_calls == 1
    assert result.tap.usage.get_metric_data_calls == 0
    assert any(
        "No metrics found in namespace 'Nothing/Here'" in r.getMessage() for r in caplog.records
    )
    assert [m["stream"] for m in result.schemas] == ["metrics"]


def test_end_date_bounds_a_backfill_and_the_next_window_continues(cloudwatch, clock):
    dims = {"InstanceId": "i-1"}
    seed(cloudwatch, "CPUUtilization", dims, NOW - dt.timedelta(hours=3), NOW)
    start, middle = NOW - dt.timedelta(hours=3), NOW - dt.timedelta(hours=2, minutes=3)
    first = run_sync(
        {**BASE_CONFIG, "start_date": start.isoformat(), "end_date": middle.isoformat()}
    )
    stamps = sorted(normal_ts(r["timestamp"]) for r in first.records)
    assert stamps[0] == start.isoformat()
    # end_date is exclusive and periods must close before it: the last one starts at 9:50.
    assert stamps[-1] == (NOW - dt.timedelta(hours=2, minutes=10)).isoformat()

    second = run_sync({**BASE_CONFIG, "start_date": start.isoformat()}, state=first.final_state)
    assert (
        min(normal_ts(r["timestamp"]) for r in second.records)
        == (NOW - dt.timedelta(hours=2, minutes=5)).isoformat()
    )
    assert not set(first.keys()) & set(second.keys())


def test_every_state_is_covered_by_the_rows_written_before_it(cloudwatch, clock, monkeypatch):
    for index in range(6):
        seed(
            cloudwatch,
            "CPUUtilization",
            {"InstanceId": f"i-{index}"},
            NOW - dt.timedelta(hours=1),
            NOW,
            salt=index,
        )
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", 1)
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", 0)
    stats = ["Average", "Maximum", "Minimum"]
    result = run_sync({**BASE_CONFIG, "statistics": stats})

    # Every row of a series up to its bookmark, all statistics, was written before the STATE.
    emitted: dict[str, dict[int, set[str]]] = {}
    expected_stamps = {int((NOW - dt.timedelta(minutes=m)).timestamp()) for m in range(10, 61, 5)}
    checked = 0
    for message in result.messages:
        if message["type"] == "RECORD":
            r = message["record"]
            emitted.setdefault(r["series_id"], {}).setdefault(epoch(r["timestamp"]), set()).add(
                r["statistic"]
            )
        elif message["type"] == "STATE":
            for series_id, mark in bookmarks(message["value"]).items():
                covered = {t for t in expected_stamps if t <= mark}
                assert {t: emitted[series_id].get(t) for t in covered} == {
                    t: set(stats) for t in covered
                }
                checked += 1
    assert checked >= 1 + 2 + 3 + 4 + 5 + 6  # each STATE after a series holds all before it


def test_flattening_keeps_dimensions_in_schema_and_records_alike(cloudwatch, clock):
    seed(
        cloudwatch,
        "CPUUtilization",
        {"InstanceId": "i-1", "Device": "a,b=c"},
        NOW - dt.timedelta(minutes=30),
        NOW,
    )
    result = run_sync({**BASE_CONFIG, "flattening_enabled": True, "flattening_max_depth": 1})

    properties = result.schemas[0]["schema"]["properties"]
    assert "dimensions" in properties
    assert result.records
    for record in result.records:
        assert set(record) <= set(properties)
        assert json.loads(record["dimensions"]) == {"Device": "a,b=c", "InstanceId": "i-1"}


def test_units_can_be_switched_off(cloudwatch, clock):
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, NOW - dt.timedelta(minutes=30), NOW)
    result = run_sync({**BASE_CONFIG, "fetch_units": False})
    assert result.records
    assert {r["unit"] for r in result.records} == {None}
    assert result.tap.usage.get_metric_statistics_calls == 0


def test_secret_appears_in_no_output_even_at_debug_level(cloudwatch, clock, caplog, capfd):
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, NOW - dt.timedelta(minutes=30), NOW)
    caplog.set_level(logging.DEBUG)
    token = "TOKEN-also-secret-1a2b3c"
    result = run_sync({**BASE_CONFIG, "aws_session_token": token})
    captured = capfd.readouterr()

    assert result.records
    assert any("botocore" in r.name for r in caplog.records)
    everything = caplog.text + captured.out + captured.err + json.dumps(result.messages)
    for secret in (SECRET, token, BASE_CONFIG["aws_access_key_id"]):
        assert secret not in everything


def test_no_unit_lookups_when_unit_is_deselected(cloudwatch, clock):
    seed(cloudwatch, "CPUUtilization", {"InstanceId": "i-1"}, NOW - dt.timedelta(minutes=30), NOW)
    catalog = TapCloudWatchMetrics(config=BASE_CONFIG).catalog_dict
    for entry in catalog["streams"][0]["metadata"]:
        if entry["breadcrumb"] == ["properties", "unit"]:
            entry["metadata"]["selected"] = False
    tap = TapCloudWatchMetrics(config=BASE_CONFIG, catalog=catalog)
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    records = [m["record"] for m in parse_messages(out.getvalue()) if m["type"] == "RECORD"]

    assert records
    assert all("unit" not in r for r in records)
    assert tap.usage.get_metric_statistics_calls == 0
