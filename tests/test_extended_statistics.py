"""Extended statistics end to end (moto computes none of them): p50, p90, p99, TM, IQM.

The fake computes percentiles by nearest rank and trimmed means over the ordered samples of a
period; the tap must ask for each statistic by name, keep it in the ``statistic`` column and
the primary key, and deliver exactly the fake's values.
"""

from __future__ import annotations

import math

import pytest

from tests.conftest import NOW as NOW_DT
from tests.fakes import FakeCloudWatch, compute_statistic, make_fake_tap, run_sync

NOW = int(NOW_DT.timestamp())
HOUR = 3600
EXTENDED = ["p50", "p90", "p99", "TM(10%:90%)", "IQM"]


pytestmark = pytest.mark.usefixtures("offline")


def test_the_fake_computes_them_as_defined() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert compute_statistic("p50", values) == 50.0
    assert compute_statistic("p90", values) == 90.0
    assert compute_statistic("p99", values) == 99.0
    assert compute_statistic("TM(10%:90%)", values) == sum(range(11, 91)) / 80
    assert compute_statistic("IQM", values) == sum(range(26, 76)) / 50


def test_percentiles_and_trimmed_means_arrive_with_their_names_and_values() -> None:
    fake = FakeCloudWatch()
    # Ten samples a period (every 30 s), values that differ per statistic.
    fake.add_many(
        "Fake/App",
        "Latency",
        40,
        start=NOW - 2 * HOUR,
        end=NOW + HOUR,
        step=30,
        value=lambda i, t: float((t // 30 * 7 + i * 13) % 97),
    )
    statistics = ["Average", *EXTENDED]
    config = {
        "start_date": "2026-01-15T11:00:00Z",
        "delay_seconds": 0,
        "fetch_units": False,
        "statistics": statistics,
    }
    out = run_sync(make_fake_tap(config, fake, now=NOW))

    expected = fake.expected(NOW - HOUR, NOW, 300, statistics)
    assert set(out.rows()) == expected
    assert len(out.records) == 40 * 12 * len(statistics)
    assert {r["statistic"] for r in out.records} == set(statistics)
    assert len(set(out.keys())) == len(out.records)  # the statistic keeps keys unique
    sent = {
        q["MetricStat"]["Stat"]
        for request in fake.requests("GetMetricData")
        for q in request["MetricDataQueries"]
    }
    assert sent == set(statistics)
    # The statistics really differ (a tap mixing them up would not pass the set check above).
    first = [r for r in out.records if r["timestamp"] == out.records[0]["timestamp"]]
    by_stat = {r["statistic"]: r["value"] for r in first if r["series_id"] == first[0]["series_id"]}
    assert len({round(v, 6) for v in by_stat.values()}) >= 4
    assert all(math.isfinite(v) for v in by_stat.values())
