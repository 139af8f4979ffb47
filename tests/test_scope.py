"""Scope: several namespaces, several regions, and the accounts linked to a monitoring account.

Region and account are part of a series' identity (``series_id``, so the primary key): the same
metric in two regions or two accounts is two series, with two bookmarks.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.settings import SettingsError, parse_settings
from tests.conftest import BASE_CONFIG
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    OWN_ACCOUNT,
    FakeCloudWatch,
    make_fake_tap,
    row_of,
    run_sync,
    state_violations,
)

NOW = int(NOW_DT.timestamp())
HOUR = 3600
LINKED = "222222222222"


pytestmark = pytest.mark.usefixtures("offline")


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "start_date": "2026-01-15T11:00:00Z",
        "delay_seconds": 0,
        "cloudwatch_metrics_namespace": "App/One",
        **extra,
    }


def _fake(namespaces: dict[str, int], salt: int = 0) -> FakeCloudWatch:
    fake = FakeCloudWatch()
    for namespace, count in namespaces.items():
        fake.add_many(
            namespace,
            "CPU",
            count,
            start=NOW - 2 * HOUR,
            end=NOW + HOUR,
            value=lambda i, t, s=salt: float((i * 7 + t // 60 + s) % 13),
        )
    return fake


def test_several_namespaces_are_all_read() -> None:
    fake = _fake({"App/One": 30, "App/Two": 20, "App/Other": 5})
    config = _config(cloudwatch_metrics_namespace="App/One", namespaces=["App/Two", "App/One"])
    out = run_sync(make_fake_tap(config, fake, now=NOW))

    listed = [r["Namespace"] for r in fake.requests("ListMetrics")]
    assert listed == ["App/One", "App/Two"]
    expected = fake.expected(NOW - HOUR, NOW, 300, ["Average"], namespace="App/One") | (
        fake.expected(NOW - HOUR, NOW, 300, ["Average"], namespace="App/Two")
    )
    assert set(out.rows()) == expected
    assert fake.count("GetMetricData") == 1  # namespaces share calls (50 queries)


def test_several_regions_each_read_with_its_own_client_and_kept_apart() -> None:
    east, west = _fake({"App/One": 600}), _fake({"App/One": 40}, salt=5)
    config = _config(region="us-east-1", regions=["eu-west-1"])
    tap = make_fake_tap(config, {"us-east-1": east, "eu-west-1": west}, now=NOW)
    out = run_sync(tap)

    assert tap.regions == ("us-east-1", "eu-west-1")
    by_region: dict[str, set] = {"us-east-1": set(), "eu-west-1": set()}
    for record in out.records:
        by_region[record["region"]].add(row_of(record))
    assert by_region["us-east-1"] == east.expected(NOW - HOUR, NOW, 300, ["Average"])
    assert by_region["eu-west-1"] == west.expected(NOW - HOUR, NOW, 300, ["Average"])
    # The same metric and dimensions in two regions: two series, two keys.
    ids = {(r["region"], r["dimensions"]["Index"]): r["series_id"] for r in out.records}
    assert ids[("us-east-1", "000000")] != ids[("eu-west-1", "000000")]
    assert len(set(out.keys())) == len(out.records)
    # Calls never mix regions: every query a region's fake received is one of its series.
    assert east.count("GetMetricData") == 2
    assert west.count("GetMetricData") == 1
    # Partitions follow the calls, region by region: memory holds one call's data.
    blocks = [region for region, _ in itertools.groupby(r["region"] for r in out.records)]
    assert sorted(blocks) == ["eu-west-1", "us-east-1"]
    expected_all = [
        *east.expected(NOW - HOUR, NOW, 300, ["Average"]),
        *west.expected(NOW - HOUR, NOW, 300, ["Average"]),
    ]
    assert state_violations(out.messages, expected_all) == []


def test_a_region_given_only_in_regions_is_enough() -> None:
    west = _fake({"App/One": 3})
    config = {**_config(regions=["eu-west-1"]), "region": None}
    out = run_sync(make_fake_tap(config, {"eu-west-1": west}, now=NOW))
    assert {r["region"] for r in out.records} == {"eu-west-1"}
    assert len(out.records) == 3 * 12


def _two_accounts() -> FakeCloudWatch:
    fake = FakeCloudWatch()
    for account, salt in ((None, 0), (LINKED, 3)):
        fake.add_many(
            "App/One",
            "CPU",
            4,
            start=NOW - 2 * HOUR,
            end=NOW + HOUR,
            value=lambda i, t, s=salt: float((i + t // 60 + s) % 11),
            account_id=account,
        )
    return fake


def test_linked_accounts_are_read_with_their_account_in_rows_and_key() -> None:
    fake = _two_accounts()
    out = run_sync(make_fake_tap(_config(include_linked_accounts=True), fake, now=NOW))

    assert fake.requests("ListMetrics")[0]["IncludeLinkedAccounts"] is True
    accounts = {r["account_id"] for r in out.records}
    assert accounts == {OWN_ACCOUNT, LINKED}
    for account in accounts:
        rows = {row_of(r) for r in out.records if r["account_id"] == account}
        assert rows == fake.expected(NOW - HOUR, NOW, 300, ["Average"], account_id=account)
    # Same namespace, metric and dimensions in two accounts: two series.
    assert len({r["series_id"] for r in out.records}) == 8
    assert len(set(out.keys())) == len(out.records)
    sent = {
        q.get("AccountId")
        for request in fake.requests("GetMetricData")
        for q in request["MetricDataQueries"]
    }
    assert sent == {OWN_ACCOUNT, LINKED}
    # GetMetricStatistics cannot address another account: no lookups, unit stays null.
    assert fake.count("GetMetricStatistics") == 0
    assert {r["unit"] for r in out.records} == {None}


def test_without_linked_accounts_only_the_own_account_is_read_with_unchanged_ids() -> None:
    fake = _two_accounts()
    out = run_sync(make_fake_tap(_config(), fake, now=NOW))
    assert {r["account_id"] for r in out.records} == {None}
    assert {row_of(r) for r in out.records} == fake.expected(
        NOW - HOUR, NOW, 300, ["Average"], account_id=OWN_ACCOUNT
    )
    # The ids of series read without accounts are what they always were (state stays valid).
    record = out.records[0]
    dims = tuple(sorted(record["dimensions"].items()))
    legacy = Series(record["region"], record["namespace"], record["metric_name"], dims)
    assert record["series_id"] == legacy.series_id
    linked = Series(legacy.region, legacy.namespace, legacy.metric_name, dims, LINKED)
    assert linked.series_id != legacy.series_id


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"namespaces": "AWS/EC2"}, "namespaces"),
        ({"namespaces": ["AWS/EC2", ""]}, "namespaces"),
        ({"namespaces": [3]}, "namespaces"),
        ({"cloudwatch_metrics_namespace": None, "namespaces": []}, "cloudwatch_metrics_namespace"),
        ({"regions": "us-east-1"}, "regions"),
        ({"regions": ["us-east-1", "Virginia"]}, "regions"),
        ({"include_linked_accounts": "sometimes"}, "include_linked_accounts"),
    ],
)
def test_bad_scope_settings_are_refused(override: dict[str, Any], setting: str) -> None:
    config = {k: v for k, v in {**BASE_CONFIG, **override}.items() if v is not None}
    with pytest.raises(SettingsError) as raised:
        parse_settings(config, NOW_DT)
    assert raised.value.setting == setting


def test_namespaces_and_regions_combine_with_the_single_settings_once_each() -> None:
    config = {
        **BASE_CONFIG,
        "cloudwatch_metrics_namespace": "AWS/EC2",
        "namespaces": ["AWS/RDS", "AWS/EC2"],
        "region": "us-east-1",
        "regions": ["eu-west-1", "us-east-1"],
    }
    settings = parse_settings(config, NOW_DT)
    assert settings.namespaces == ("AWS/EC2", "AWS/RDS")
    assert settings.regions == ("us-east-1", "eu-west-1")
    only_list = {k: v for k, v in config.items() if k != "cloudwatch_metrics_namespace"}
    assert parse_settings(only_list, NOW_DT).namespaces == ("AWS/RDS", "AWS/EC2")
