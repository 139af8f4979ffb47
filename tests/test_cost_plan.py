"""Cost and plan: the ``plan`` bill equals the run, RecentlyActive, lookback, retention, pruning."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest

from tap_cloudwatch_metrics.billing import PlanReport, parse_every
from tap_cloudwatch_metrics.schedule import (
    NEW_SERIES_MARGIN,
    Floors,
    floors,
    plan_run,
    steady_state_calls,
    use_recently_active,
)
from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    FAKE_CONFIG,
    FakeCloudWatch,
    bookmarks,
    install,
    make_fake_tap,
    run_sync,
    wall_clock,
)

NOW = int(NOW_DT.timestamp())
HOUR, DAY = 3600, 86400
NS = FAKE_CONFIG["cloudwatch_metrics_namespace"]
REGION = FAKE_CONFIG["region"]


pytestmark = pytest.mark.usefixtures("offline")


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def fleet(series: int, start: int = NOW - 3 * HOUR, end: int = NOW + 3 * HOUR) -> FakeCloudWatch:
    fake = FakeCloudWatch(now=NOW)
    fake.add_many(NS, "CPU", series, start=start, end=end)
    return fake


def list_requests(fake: FakeCloudWatch) -> list[dict[str, Any]]:
    return fake.requests("ListMetrics")


# -- the plan is the run -------------------------------------------------------------------------


@pytest.mark.parametrize("second_run", [False, True])
def test_plan_equals_what_the_run_then_does(second_run: bool) -> None:
    config = {"statistics": ["Average", "Maximum"], "start_date": None}
    state = None
    now = NOW
    if second_run:
        first = run_sync(make_fake_tap(config, fleet(700), now=NOW))
        state, now = first.final_state, NOW + HOUR

    planner_fake, runner_fake = fleet(700), fleet(700)
    report = make_fake_tap(config, planner_fake, state=state, now=now).plan_report(every=HOUR)
    assert planner_fake.count("GetMetricData") == 0
    assert planner_fake.count("GetMetricStatistics") == 0

    tap = make_fake_tap(config, runner_fake, state=state, now=now)
    run_sync(tap)
    assert report.series_listed == 700
    assert report.list_metrics_calls == runner_fake.count("ListMetrics") == 2
    assert report.get_metric_data_calls == runner_fake.count("GetMetricData") == 3
    assert report.billed_metric_requests == runner_fake.billed_metric_requests == 1400
    assert report.minimum_metric_requests == 1400
    assert runner_fake.count("GetMetricStatistics") == report.unit_lookups_at_most
    assert report.unit_lookups_at_most == (0 if second_run else 700)
    assert report.recently_active is True
    assert report.steady_calls == 3
    assert report.run_usd == pytest.approx((2 + 1400) * 1e-5)
    assert report.month_usd == pytest.approx(720 * (2 + 1400) * 1e-5)


def test_plan_command_prints_the_bill(monkeypatch, tmp_path, capsys) -> None:
    fake = fleet(700)
    install(monkeypatch, fake)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**FAKE_CONFIG, "statistics": ["Average", "Maximum"]}))
    with wall_clock(NOW), pytest.raises(SystemExit) as done:
        TapCloudWatchMetrics.cli.main(["plan", "--config", str(path), "--every", "1h"])
    out = capsys.readouterr().out

    assert done.value.code == 0
    assert fake.count("GetMetricData") == 0
    assert "GetMetricData calls        3" in out
    assert "billed metric-requests     1,400 (minimum 1,400)" in out
    assert "720 runs a month" in out
    assert "cost per month             $10.09" in out


def test_plan_command_refuses_a_bad_schedule(monkeypatch, tmp_path, capsys) -> None:
    install(monkeypatch, fleet(1))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(FAKE_CONFIG))
    with pytest.raises(SystemExit) as done:
        TapCloudWatchMetrics.cli.main(["plan", "--config", str(path), "--every", "hourly"])
    assert done.value.code == 2
    assert "--every 'hourly'" in capsys.readouterr().err


def test_schedules_parse() -> None:
    assert parse_every("15m") == 900
    assert parse_every("1h") == 3600
    assert parse_every("1d") == 86400
    assert parse_every("90") == 90
    for bad in ("0h", "h", "1w", "-1h"):
        with pytest.raises(ValueError, match="--every"):
            parse_every(bad)


def test_report_renders_every_number() -> None:
    report = PlanReport(
        namespace="AWS/EC2",
        region="us-east-1",
        period=300,
        statistics=("Average",),
        series_listed=10_000,
        series_due=9_000,
        window_end="2026-01-15T11:55:00+00:00",
        recently_active=False,
        list_metrics_calls=20,
        get_metric_data_calls=18,
        billed_metric_requests=9_000,
        minimum_metric_requests=9_000,
        unit_lookups_at_most=5,
        every=900,
        steady_calls=20,
    )
    text = report.render()
    assert "series listed              10,000 (ListMetrics RecentlyActive: no)" in text
    assert "every 15m" in text
    assert "2,880 runs a month" in text
    assert f"${2880 * (20 + 10_000) * 1e-5:,.2f}" in text
    assert steady_state_calls(10_000, 900, 300, ["Average"]) == 20


# -- RecentlyActive ------------------------------------------------------------------------------


def test_recently_active_is_used_when_every_window_is_recent() -> None:
    fake = fleet(3)
    first = run_sync(make_fake_tap({"start_date": None}, fake, now=NOW))
    assert [r.get("RecentlyActive") for r in list_requests(fake)] == ["PT3H"]

    fake_later = fleet(3)
    run_sync(
        make_fake_tap({"start_date": None}, fake_later, state=first.final_state, now=NOW + HOUR)
    )
    assert [r.get("RecentlyActive") for r in list_requests(fake_later)] == ["PT3H"]


def test_an_old_bookmark_or_start_date_turns_recently_active_off() -> None:
    fake = fleet(3, start=NOW - 10 * HOUR)
    first = run_sync(make_fake_tap({"start_date": iso(NOW - 6 * HOUR)}, fake, now=NOW))
    assert [r.get("RecentlyActive") for r in list_requests(fake)] == [None]

    # Five hours later: every bookmark is older than three hours.
    fake_later = fleet(3, start=NOW - 10 * HOUR)
    run_sync(
        make_fake_tap({"start_date": None}, fake_later, state=first.final_state, now=NOW + 5 * HOUR)
    )
    assert [r.get("RecentlyActive") for r in list_requests(fake_later)] == [None]


@pytest.mark.parametrize(("setting", "sent"), [(True, "PT3H"), (False, None)])
def test_recently_active_can_be_forced(setting: bool, sent: str | None) -> None:
    fake = fleet(3)
    start = iso(NOW - 6 * HOUR) if setting else None
    run_sync(make_fake_tap({"recently_active": setting, "start_date": start}, fake, now=NOW))
    assert [r.get("RecentlyActive") for r in list_requests(fake)] == [sent]


def test_recently_active_rule() -> None:
    assert use_recently_active(None, [NOW - HOUR], NOW - 2 * HOUR, NOW)
    assert not use_recently_active(None, [NOW - HOUR, NOW - 4 * HOUR], NOW - HOUR, NOW)
    assert not use_recently_active(None, [], NOW - 4 * HOUR, NOW)
    assert use_recently_active(True, [NOW - 40 * HOUR], NOW - 40 * HOUR, NOW)
    assert not use_recently_active(False, [], NOW, NOW)


# -- floors: where windows start -----------------------------------------------------------------


def test_floors() -> None:
    start = NOW - HOUR
    assert floors(start, explicit=True, history_start=0, last_run_end=NOW) == Floors(start, start)
    assert floors(start, explicit=False, history_start=None, last_run_end=None) == Floors(0, start)
    history = NOW - 30 * DAY
    assert floors(start, explicit=False, history_start=history, last_run_end=NOW - 2 * HOUR) == (
        Floors(0, NOW - 2 * HOUR - NEW_SERIES_MARGIN)
    )


def test_a_series_first_listed_after_a_completed_run_starts_near_that_runs_end() -> None:
    later = NOW + DAY
    state = None
    for now in (NOW, NOW + 2 * HOUR):
        state = run_sync(make_fake_tap({"start_date": None}, fleet(2), state=state, now=now))
        state = state.final_state
    assert state["bookmarks"]["metrics"]["last_run_end"] == iso(NOW + 2 * HOUR - 300)
    assert state["bookmarks"]["metrics"]["history_start"] == iso(NOW - HOUR)

    fake_later = fleet(2, end=later)
    fake_later.add_many(NS, "Disk", 1, start=NOW - 3 * HOUR, end=later)
    third = run_sync(make_fake_tap({"start_date": None}, fake_later, state=state, now=later))
    disk = [r for r in third.records if r["metric_name"] == "Disk"]
    stamps = sorted(int(dt.datetime.fromisoformat(r["timestamp"]).timestamp()) for r in disk)
    assert stamps[0] == NOW + 2 * HOUR - 300 - NEW_SERIES_MARGIN
    assert stamps[-1] == later - 600


# -- lookback ------------------------------------------------------------------------------------


def test_lookback_rereads_late_data_with_the_same_keys_and_never_moves_a_bookmark_back() -> None:
    dims = {"Host": "a"}
    fake = FakeCloudWatch(now=NOW)
    fake.add_series(NS, "CPU", dims, {t: [1.0] for t in range(NOW - 2 * HOUR, NOW, 60)})
    first = run_sync(make_fake_tap({"lookback": 3}, fake, now=NOW))
    mark = bookmarks(first.final_state)
    assert list(mark.values()) == [NOW - 600]

    # Late samples land in the last two periods already emitted, and new ones arrive.
    fake.add_series(NS, "CPU", dims, {t: [100.0] for t in range(NOW - 600, NOW - 300, 60)})
    fake.add_series(NS, "CPU", dims, {t: [1.0] for t in range(NOW, NOW + 600, 60)})
    second = run_sync(make_fake_tap({"lookback": 3}, fake, state=first.final_state, now=NOW + 600))

    def stamp(record: dict) -> int:
        return int(dt.datetime.fromisoformat(record["timestamp"]).timestamp())

    got = {stamp(r): r["value"] for r in second.records}
    assert sorted(got) == [NOW - 1200, NOW - 900, NOW - 600, NOW - 300, NOW]
    assert got[NOW - 600] == pytest.approx((5 * 1.0 + 5 * 100.0) / 10)
    assert list(bookmarks(second.final_state).values()) == [NOW]
    first_keys = {(r["series_id"], r["statistic"], r["timestamp"]) for r in first.records}
    reread = {(r["series_id"], r["statistic"], r["timestamp"]) for r in second.records}
    assert len(first_keys & reread) == 3
    for state in second.states:
        marks = list(bookmarks(state).values())
        assert not marks or marks[0] >= NOW - 600


# -- retention and pruning -----------------------------------------------------------------------


def test_a_start_older_than_retention_is_clamped_with_a_warning(caplog) -> None:
    caplog.set_level(logging.WARNING)
    fake = FakeCloudWatch(now=NOW)
    fake.add_many(NS, "CPU", 2, start=NOW - 20 * DAY, end=NOW)
    tap = make_fake_tap({"period": 60, "start_date": iso(NOW - 100 * DAY)}, fake, now=NOW)
    run_sync(tap)

    starts = {r["StartTime"] for r in fake.requests("GetMetricData")}
    assert len(starts) == 1
    assert int(starts.pop()) == NOW - 15 * DAY
    assert any(
        "2 series start at" in r.getMessage() and "60-second data" in r.getMessage()
        for r in caplog.records
    )


def test_state_forgets_series_gone_for_over_the_horizon() -> None:
    fake = fleet(1)
    alive = Series(REGION, NS, "CPU", (("Index", "000000"),)).series_id

    def partition(series_id: str, mark: int | None) -> dict:
        entry: dict[str, Any] = {"context": {"series_id": series_id}}
        if mark is not None:
            entry |= {"replication_key": "timestamp", "replication_key_value": iso(mark)}
        return entry

    state = {
        "bookmarks": {
            "metrics": {
                "partitions": [
                    partition(alive, NOW - 20 * DAY),
                    partition("gone-long-ago", NOW - 20 * DAY),
                    partition("quiet-recently", NOW - 2 * DAY),
                    partition("never-had-data", None),
                ]
            }
        }
    }
    out = run_sync(make_fake_tap({"start_date": None}, fake, state=state, now=NOW))
    kept = {
        p["context"]["series_id"] for p in out.final_state["bookmarks"]["metrics"]["partitions"]
    }
    assert kept == {alive, "quiet-recently"}


def test_plan_run_orders_series_by_window_start() -> None:
    series = [Series(REGION, NS, "CPU", (("Host", h),)) for h in "abc"]
    marks = {series[0].series_id: NOW - HOUR, series[1].series_id: NOW - 5 * HOUR}
    plan = plan_run(
        series,
        marks,
        floor=Floors(NOW - DAY, NOW - 2 * HOUR),
        now=NOW,
        end=NOW,
        period=300,
        statistics=["Average"],
    )
    assert [s.series_id for s in plan.series] == [
        series[1].series_id,
        series[2].series_id,
        series[0].series_id,
    ]
    assert [w.start for w in plan.windows] == [
        NOW - 5 * HOUR + 300,
        NOW - 2 * HOUR,
        NOW - HOUR + 300,
    ]
    assert plan.bookmarks == {0: NOW - 5 * HOUR, 1: None, 2: NOW - HOUR}
