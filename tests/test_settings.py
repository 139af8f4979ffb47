"""Bad settings are refused before any API call, in one line naming the setting."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tap_cloudwatch_metrics.settings import SettingsError, environment_problem, parse_settings
from tap_cloudwatch_metrics.statistics import statistic_error
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import BASE_CONFIG, NOW, SECRET

BAD_SETTINGS = [
    ("period", 90),
    ("period", 0),
    ("period", -60),
    ("period", 45),
    ("period", "five"),
    ("period", 1.5),
    ("period", True),
    ("statistics", []),
    ("statistics", ["Avg"]),
    ("statistics", ["average"]),
    ("statistics", ["p101"]),
    ("statistics", ["p"]),
    ("statistics", ["TM(90%:10%)"]),
    ("statistics", ["TM(10%:90)"]),
    ("statistics", ["PR(10%:20%)"]),
    ("statistics", ["TM()"]),
    ("statistics", ["TM(:)"]),
    ("statistics", ["tm101"]),
    ("statistics", [3]),
    ("statistics", {"Average": True}),
    ("dimensions", "InstanceId=i-1"),
    ("dimensions", {"InstanceId": 3}),
    ("dimensions", {"": "x"}),
    ("dimensions", {"InstanceId": ""}),
    ("dimensions", {f"d{i}": "v" for i in range(31)}),
    ("start_date", "yesterday"),
    ("start_date", 20260101),
    ("end_date", "2026-13-01"),
    ("end_date", "2025-01-01T00:00:00Z"),
    ("delay_seconds", -1),
    ("delay_seconds", "soon"),
    ("fetch_units", "maybe"),
    ("region", "us-east-1a"),
    ("region", "Virginia"),
    ("region", 1),
    ("aws_endpoint_url", "localhost:4566"),
    ("cloudwatch_metrics_namespace", ""),
    ("cloudwatch_metrics_namespace", None),
    ("cloudwatch_metrics_namespace", "x" * 256),
    ("max_workers", 0),
    ("max_workers", 17),
    ("max_workers", 2.5),
    ("max_workers", "four"),
    ("max_workers", True),
    ("max_attempts", 0),
    ("max_attempts", 21),
    ("max_attempts", "many"),
    ("request_timeout", 0),
    ("request_timeout", 901),
    ("request_timeout", -5),
]


@pytest.mark.parametrize(("value", "expected"), [(None, 1), ("", 1), (1, 1), ("4", 4), (16, 16)])
def test_max_workers_defaults_to_one_and_takes_numbers_and_numeric_strings(
    value: Any, expected: int
) -> None:
    config = {**BASE_CONFIG, "max_workers": value}
    assert parse_settings(config, NOW).max_workers == expected


@pytest.mark.parametrize(("setting", "value"), BAD_SETTINGS)
def test_bad_setting_is_refused_naming_the_setting(setting: str, value: Any) -> None:
    config = {**BASE_CONFIG, "start_date": "2026-01-01T00:00:00Z", setting: value}
    with pytest.raises(SettingsError) as raised:
        parse_settings(config, NOW)
    message = str(raised.value)
    assert raised.value.setting == setting
    assert f"'{setting}'" in message
    assert "\n" not in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"aws_secret_access_key": None}, "aws_secret_access_key"),
        ({"aws_access_key_id": None}, "aws_access_key_id"),
        (
            {"aws_access_key_id": None, "aws_secret_access_key": None, "aws_session_token": "t"},
            "aws_session_token",
        ),
        ({"aws_secret_access_key": 12345}, "aws_secret_access_key"),
    ],
)
def test_credentials_must_come_as_a_pair(config: dict, setting: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings({**BASE_CONFIG, **config}, NOW)
    assert raised.value.setting == setting
    assert "12345" not in str(raised.value)


@pytest.mark.parametrize(
    "name",
    [
        "Average",
        "Sum",
        "SampleCount",
        "Maximum",
        "Minimum",
        "p0",
        "p50",
        "p99",
        "p99.9",
        "p100",
        "p99.99",
        "IQM",
        "TM(10%:90%)",
        "TM(:95%)",
        "TM(10%:)",
        "TM(100:2000)",
        "WM(10%:90%)",
        "TC(:90%)",
        "TS(5%:95%)",
        "PR(:300)",
        "PR(100:2000)",
        "PR(100:)",
        "tm99",
        "wm98",
        "tc90",
        "ts99.5",
    ],
)
def test_cloudwatch_statistics_are_accepted(name: str) -> None:
    assert statistic_error(name) is None
    settings = parse_settings({**BASE_CONFIG, "statistics": [name]}, NOW)
    assert settings.statistics == (name,)


def test_defaults_follow_the_spec() -> None:
    settings = parse_settings(
        {"cloudwatch_metrics_namespace": "AWS/EC2", "region": "us-east-1"}, NOW
    )
    assert settings.period == 300
    assert settings.statistics == ("Average",)
    assert settings.dimensions is None
    assert settings.start_date == NOW - dt.timedelta(minutes=60)
    assert not settings.start_date_explicit
    assert settings.end_date is None
    assert 120 <= settings.delay_seconds <= 600
    assert settings.fetch_units is True


def test_dates_are_read_as_utc() -> None:
    settings = parse_settings(
        {**BASE_CONFIG, "start_date": "2026-01-01", "end_date": "2026-01-02T01:00:00+01:00"}, NOW
    )
    assert settings.start_date == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert settings.end_date == dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)


def test_settings_are_checked_before_any_client_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a client was created")

    monkeypatch.setattr("tap_cloudwatch_metrics.tap.make_client", no_client)
    with pytest.raises(SettingsError, match="'period'"):
        TapCloudWatchMetrics(config={**BASE_CONFIG, "period": 61})


def test_missing_region_is_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {k: v for k, v in BASE_CONFIG.items() if k != "region"}
    tap = TapCloudWatchMetrics(config=config)
    with pytest.raises(SettingsError, match="'region'"):
        _ = tap.client


def test_unknown_profile_is_refused_before_any_call() -> None:
    config = {k: v for k, v in BASE_CONFIG.items() if not k.startswith("aws_")}
    tap = TapCloudWatchMetrics(config={**config, "aws_profile": "no-such-profile"})
    with pytest.raises(SettingsError, match="'aws_profile'"):
        _ = tap.client


def run_cli(tmp_path: Any, config: dict[str, Any], *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_cloudwatch_metrics", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"period": 90}, "period"),
        ({"statistics": ["P99"]}, "statistics"),
        ({"aws_secret_access_key": None}, "aws_secret_access_key"),
        ({"aws_session_token": ["not", "a", "string"]}, "aws_session_token"),
    ],
)
def test_cli_prints_one_line_and_no_traceback(tmp_path: Any, override: dict, setting: str) -> None:
    config = {k: v for k, v in {**BASE_CONFIG, **override}.items() if v is not None}
    result = run_cli(tmp_path, config)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "Invalid setting" in line]
    assert len(errors) == 1
    assert f"'{setting}'" in errors[0]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert result.stdout == ""


def test_about_shows_no_secret(tmp_path: Any) -> None:
    result = run_cli(tmp_path, BASE_CONFIG, "--about", "--format", "json")
    assert result.returncode == 0
    about = json.loads(result.stdout)
    settings = about["settings"]["properties"]
    assert settings["aws_secret_access_key"].get("secret") is True
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"stream_maps": 5}, "stream_maps"),  # left to the SDK's schema check
        ({"flattening_max_depth": "deep"}, "flattening_max_depth"),
        ({"flattening_enabled": "maybe"}, "flattening_enabled"),
    ],
)
def test_sdk_settings_are_refused_in_one_line_too(
    tmp_path: Any, override: dict, setting: str
) -> None:
    result = run_cli(tmp_path, {**BASE_CONFIG, **override})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Config validation failed" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "Invalid setting" in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert f"'{setting}'" in errors[0]
    assert result.stdout == ""


def test_settings_written_as_text_are_handed_to_the_sdk_typed() -> None:
    """parse_settings takes "300" and "true"; the SDK's schema check must then accept them."""
    config = {
        **BASE_CONFIG,
        "period": " 300 ",
        "max_workers": "",
        "fetch_units": "False",
        "recently_active": "auto",
        "flattening_enabled": "true",
        "flattening_max_depth": "2",
    }
    tap = TapCloudWatchMetrics(config=config)
    assert tap.config["period"] == 300
    assert tap.settings.period == 300
    assert tap.config["fetch_units"] is False
    assert tap.config["flattening_enabled"] is True
    assert tap.config["flattening_max_depth"] == 2
    assert "recently_active" not in tap.config
    assert tap.settings.max_workers == 1


def run_env_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    prefix = "TAP_CLOUDWATCH_METRICS_"
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    settings = {"CLOUDWATCH_METRICS_NAMESPACE": "AWS/EC2", "REGION": "us-east-1", **env}
    return subprocess.run(
        [sys.executable, "-m", "tap_cloudwatch_metrics", "--config", "ENV"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**base, **{prefix + k: v for k, v in settings.items()}},
    )


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [
        ("PERIOD", "abc", "period"),  # the SDK's int() would raise a bare ValueError
        ("DELAY_SECONDS", "\u0663", "delay_seconds"),  # int() reads the Arabic-Indic 3 as 3
        ("FETCH_UNITS", "maybe", "fetch_units"),  # the SDK would read it as false
    ],
)
def test_environment_settings_the_sdk_would_misread_are_refused(
    name: str, value: str, setting: str
) -> None:
    result = run_env_cli({name: value})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"tap-cloudwatch-metrics: Invalid setting '{setting}': "
        f"TAP_CLOUDWATCH_METRICS_{name}={value!r}"
        + (
            ": must be true or false"
            if setting == "fetch_units"
            else " is not a whole number (0-9 digits)"
        )
    )
    assert result.stdout == ""


def test_environment_problem_passes_what_the_sdk_reads_right() -> None:
    prefix = "TAP_CLOUDWATCH_METRICS_"
    good = {prefix + "PERIOD": " 60", prefix + "FETCH_UNITS": "Yes", prefix + "LOOKBACK": "0"}
    assert environment_problem(good, prefix) is None
    bad = environment_problem({**good, prefix + "MAX_WORKERS": "4.0"}, prefix)
    assert bad is not None
    assert bad.setting == "max_workers"
