"""Fuzzed configs: every one is either usable settings or one clear line naming a setting.

A config reaches ``parse_settings`` from a JSON file, a Meltano project or environment variables,
so any JSON value can sit under any key, keys can be missing and unknown keys present. Whatever
arrives, the tap must answer with :class:`Settings` or a :class:`SettingsError` (one line, naming
a real setting, never showing a secret), never with another exception: through the CLI that
would be a traceback instead of a message a user can act on. Settings it accepts must also be
ones the rest of the tap can use, or the refusal has only moved to the middle of a run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from singer_sdk.helpers._util import load_json

from tap_cloudwatch_metrics.settings import (
    HIGH_RESOLUTION_PERIODS,
    MAX_DIMENSIONS,
    SECRET_SETTINGS,
    Settings,
    SettingsError,
    parse_settings,
)
from tap_cloudwatch_metrics.statistics import statistic_error
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import NOW

UTC = dt.timezone.utc
SCHEMA: dict[str, dict[str, Any]] = TapCloudWatchMetrics.config_jsonschema["properties"]
SETTING_NAMES = tuple(SCHEMA)
# The settings module's list, and any setting the schema marks secret (added since, say).
SECRETS = frozenset(SECRET_SETTINGS) | {name for name, spec in SCHEMA.items() if spec.get("secret")}
CLI = Path(sys.executable).with_name("tap-cloudwatch-metrics")
# A secret's value is built around this marker (plus random hex), so finding the marker in a
# message means a secret leaked, never that another setting happened to hold the same text.
SECRET_MARKER = "SeCrEt"
_MARKED = re.compile(SECRET_MARKER + r"[0-9a-f]{8}")
# Lines the SDK logs on stderr before the tap refuses a config (timestamp | level | logger).
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO) ")


# -- values ------------------------------------------------------------------------------------

REGIONS = ["us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1"]
STATISTICS = [
    "Average",
    "Sum",
    "SampleCount",
    "Maximum",
    "Minimum",
    "p0",
    "p50",
    "p99.9",
    "p100",
    "IQM",
    "TM(10%:90%)",
    "PR(:300)",
    "tm99",
]
_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23)),
)


def _date_strings(min_year: int, max_year: int) -> st.SearchStrategy[str]:
    """ISO 8601 dates and date-times, naive, UTC (``Z``) or with an offset."""
    moments = st.datetimes(
        min_value=dt.datetime(min_year, 1, 1),
        max_value=dt.datetime(max_year, 12, 31, 23, 59, 59),
        timezones=st.none() | st.just(UTC) | _offsets,
    )
    return st.one_of(
        moments.map(lambda m: m.isoformat()),
        moments.map(lambda m: m.isoformat().replace("+00:00", "Z")),
        moments.map(lambda m: m.date().isoformat()),
    )


def _numbers_as_text(values: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """Numbers as environment variables carry them, sometimes padded with spaces."""
    return st.tuples(st.sampled_from(["", " "]), values.map(str), st.sampled_from(["", "\t"])).map(
        "".join
    )


# Valid values of each setting, so that whole configs are often usable and the fuzzing below
# mutates configs that are otherwise fine (a config that is wrong everywhere fails first on
# aws_access_key_id and tells nothing about the other settings).
_multiples_of_60 = st.integers(1, 1440).map(lambda n: n * 60)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "aws_profile": st.none() | st.text(max_size=20),
    "aws_endpoint_url": st.sampled_from(
        [None, "", "http://localhost:4566", "https://monitoring.us-east-1.amazonaws.com"]
    ),
    "region": st.sampled_from([None, "", *REGIONS]),
    "cloudwatch_metrics_namespace": st.sampled_from(["AWS/EC2", "MyApp", "a" * 255])
    | st.text(min_size=1, max_size=40).filter(str.strip),
    "period": st.sampled_from(HIGH_RESOLUTION_PERIODS)
    | _multiples_of_60
    | _numbers_as_text(_multiples_of_60),
    "statistics": st.lists(st.sampled_from(STATISTICS), min_size=1, max_size=5)
    | st.sampled_from(STATISTICS),
    "dimensions": st.none()
    | st.just({})
    | st.dictionaries(
        st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=30), min_size=1, max_size=30
    ),
    # Before NOW and after it: a valid base never fails on end_date <= start_date, which is
    # checked early and would hide every setting checked after it.
    "start_date": _date_strings(1990, 2025),
    "end_date": _date_strings(2027, 2100),
    "delay_seconds": st.integers(0, 10**6) | _numbers_as_text(st.integers(0, 3600)),
    "lookback": st.integers(0, 1440) | _numbers_as_text(st.integers(0, 1440)),
    "max_workers": st.sampled_from([None, ""]) | st.integers(1, 16),
    "recently_active": st.sampled_from([None, True, False, "auto", "", "true", "FALSE"]),
    "fetch_units": st.sampled_from([True, False, "true", "False"]),
}

# Any JSON document, as json.loads returns it (NaN and Infinity included: Python reads them),
# or as the SDK reads a config file (non-integer numbers as Decimal). Integers stay under the
# 4,300 digits json.loads itself refuses.
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**4000, -(10**4000)]),
    st.floats(),
    st.decimals(),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)

# Near misses: values of the right JSON type, or that a lenient reader might take for one.
# What str.isdigit accepts: decimal digits of every script ("٣") and other digits ("²", "①").
_digits = st.characters(categories=("Nd", "No"))
_other_digits = st.sampled_from("²³¹⁰⁴⁹₀₉①⑨⓪")
_unusual_numbers = st.one_of(
    st.text(_digits, min_size=1, max_size=6),
    st.tuples(st.sampled_from([" ", ""]), st.text(_other_digits, min_size=1, max_size=3)).map(
        "".join
    ),
    st.sampled_from([4300, 4301, 5000]).map(lambda n: "1" * n),  # past int()'s digit limit
    st.sampled_from(["", " ", "0", "-1", "1.0", "1e3", "0x10", "+60", "60 ", "6_0", "NaN"]),
)
_bad_integers = st.one_of(
    _unusual_numbers,
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([2**31, 2**63, 10**4000, -(10**4000)]),
    st.floats() | st.decimals() | st.booleans(),
)
_bad_dates = st.one_of(
    _date_strings(1, 9999),
    # The calendar's ends with an offset: valid ISO 8601, but a UTC moment outside datetime.
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:30:00+23:59",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:00:00-23:59",
            "0001-01-01",
            "9999-12-31T23:59:59Z",
            "2026-02-30",
            "2026-01-01T24:00:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01 00:00",
            "20260101",
            "2026-W01-1",
            "yesterday",
            "",
            " ",
        ]
    ),
    st.integers(),
)
_bad_strings = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "us-east-1\n",
            " us-east-1",
            "us-east-\u0661",
            "US-EAST-1",
            "us-east-1a",
            "localhost:4566",
            "http://",
            "ftp://x",
            "\x00",
            "a" * 256,
        ]
    ),
)
_bad_statistics = st.one_of(
    st.lists(st.one_of(st.sampled_from(STATISTICS), st.text(max_size=12), JSON_VALUES), max_size=4),
    st.sampled_from(["p101", "P99", "TM(90%:10%)", "PR(10%:20%)", "p" + "9" * 400, "tm1e3"]),
)
_bad_maps = st.one_of(
    st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=3), st.just("v"), min_size=31, max_size=33),
)
_bad_booleans = st.sampled_from(["yes", "1", "0", "TRUE ", "auto", "", 0, 1, 2.0, [], {}])


def _kind(name: str) -> str:
    """The JSON type the schema declares for a setting (dates apart)."""
    schema = SCHEMA[name]
    if schema.get("format") == "date-time":
        return "date"
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    return next((t for t in types if t != "null"), "any")


_NEAR_MISS_BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "integer": _bad_integers,
    "date": _bad_dates,
    "string": _bad_strings,
    "array": _bad_statistics,
    "object": _bad_maps,
    "boolean": _bad_booleans,
    "any": JSON_VALUES,
}


def _valid(name: str) -> st.SearchStrategy[Any]:
    """A valid value; a setting added since this file was written gets its default (or null)."""
    if name in VALID:
        return VALID[name]
    return st.just(SCHEMA[name].get("default"))


# -- secrets -----------------------------------------------------------------------------------


@st.composite
def _secret(draw: st.DrawFn, *, valid: bool) -> Any:
    """A secret setting's value; every text in it carries a unique marker."""
    marked = SECRET_MARKER + draw(st.text("0123456789abcdef", min_size=8, max_size=8))
    if valid:
        return draw(st.sampled_from([f"AKIA{marked}", f"{marked}/+=xyz", marked]))
    return draw(
        st.sampled_from(
            [
                marked,
                f"{marked}\nsecond line",
                [marked],
                {"key": marked},
                {marked: 1},
                [[marked, 1]],
                7_351_984_620_133,
                7351984.62013,
                True,
                "",
                None,
            ]
        )
    )


def secret_texts(config: dict[str, Any]) -> set[str]:
    """What must never appear in a message: the secrets' marked texts and long numbers."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.update(_MARKED.findall(value))
        elif isinstance(value, bool):
            return
        elif isinstance(value, int | float) and len(str(value)) >= 10:
            found.update({str(value), repr(value)})
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)

    for name in SECRETS:
        if name in config:
            walk(config[name])
    return found


# -- whole configs -----------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A config: a valid base (keys may be absent), then a few mutations of any key.

    Mutations set a key to a near miss of its type or any JSON value, delete it, or add an
    unknown key; secret settings only ever get marked values (see :func:`secret_texts`).
    """
    config: dict[str, Any] = {}
    credentials = draw(st.sampled_from(["none", "keys", "keys+token"]))
    if credentials != "none":
        config["aws_access_key_id"] = draw(_secret(valid=True))
        config["aws_secret_access_key"] = draw(_secret(valid=True))
    if credentials == "keys+token":
        config["aws_session_token"] = draw(_secret(valid=True))
    for name in SETTING_NAMES:
        if name in SECRETS:
            continue
        # Always a namespace: without one no config is usable, and usable ones are half the
        # point (their invariants are checked below).
        if name == "cloudwatch_metrics_namespace" or draw(st.booleans()):
            config[name] = draw(_valid(name))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["near-miss"] * 4 + ["any", "delete", "extra"]))
        if action == "extra":
            key = draw(st.text(max_size=20).filter(lambda k: k not in SCHEMA))
            config[key] = draw(JSON_VALUES)
            continue
        name = draw(st.sampled_from(SETTING_NAMES))
        if action == "delete":
            config.pop(name, None)
        elif name in SECRETS:
            config[name] = draw(_secret(valid=False))
        elif action == "near-miss":
            config[name] = draw(_NEAR_MISS_BY_KIND[_kind(name)])
        else:
            config[name] = draw(JSON_VALUES)
    return config


@st.composite
def one_bad_setting(draw: st.DrawFn) -> dict[str, Any]:
    """A minimal valid config with one setting set to a near miss or any JSON value.

    Nothing else is wrong, so no earlier setting's refusal hides how this one is handled.
    """
    config: dict[str, Any] = {"cloudwatch_metrics_namespace": "AWS/EC2", "region": "us-east-1"}
    name = draw(st.sampled_from(SETTING_NAMES))
    if name in SECRETS:
        config[name] = draw(_secret(valid=False))
    else:
        config[name] = draw(_NEAR_MISS_BY_KIND[_kind(name)] | JSON_VALUES)
    return config


def check_refusal(exc: SettingsError, config: dict[str, Any]) -> None:
    """One line that names a real setting and shows no secret."""
    message = str(exc)
    assert exc.setting in SETTING_NAMES, f"names no setting of the schema: {message!r}"
    assert f"'{exc.setting}'" in message
    assert message.splitlines() == [message], f"more than one line: {message!r}"
    for secret in secret_texts(config):
        assert secret not in message, f"secret {secret!r} shown in {message!r}"


# -- in-process properties ---------------------------------------------------------------------


def check_parse(config: dict[str, Any]) -> None:
    """Settings, or a clear refusal; any other exception fails the test as it is."""
    try:
        result = parse_settings(config, NOW)
    except SettingsError as exc:
        check_refusal(exc, config)
    else:
        assert isinstance(result, Settings)


@settings(max_examples=200, deadline=None)
@given(config=one_bad_setting())
def test_any_value_of_any_setting_gives_settings_or_one_line_naming_it(
    config: dict[str, Any],
) -> None:
    """Never another exception: through the CLI that is a traceback, not a message."""
    check_parse(config)


@settings(max_examples=200, deadline=None)
@given(config=configs())
def test_any_config_gives_settings_or_one_line_naming_a_setting(config: dict[str, Any]) -> None:
    """Whole configs: several settings wrong, missing or unknown at once."""
    check_parse(config)


def _usable_region(region: str) -> bool:
    """An AWS region name as botocore builds endpoints from: ASCII, nothing around it."""
    return re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", region) is not None


@settings(max_examples=200, deadline=None)
@given(config=configs())
def test_accepted_settings_are_ones_the_run_can_use(config: dict[str, Any]) -> None:
    """What parse_settings accepts the planner, the client and CloudWatch can take as it is."""
    try:
        result = parse_settings(config, NOW)
    except Exception:  # refusals, and crashes: the two tests above judge those
        return
    assert result.namespaces
    for namespace in result.namespaces:
        assert isinstance(namespace, str)
        assert 0 < len(namespace) <= 255
        assert namespace.strip()
    assert type(result.period) is int
    assert result.period in HIGH_RESOLUTION_PERIODS or (
        result.period > 0 and result.period % 60 == 0
    )
    assert result.statistics
    assert len(set(result.statistics)) == len(result.statistics)
    assert all(statistic_error(s) is None for s in result.statistics)
    if result.dimensions is not None:
        assert 0 < len(result.dimensions) <= MAX_DIMENSIONS
        for name, value in result.dimensions.items():
            assert isinstance(name, str) and name
            assert isinstance(value, str) and value
    assert result.start_date.utcoffset() == dt.timedelta(0)
    assert math.isfinite(result.start_date.timestamp())
    if result.end_date is not None:
        assert result.end_date.utcoffset() == dt.timedelta(0)
        assert result.end_date > result.start_date
    assert type(result.delay_seconds) is int
    assert result.delay_seconds >= 0
    assert type(result.lookback) is int
    assert result.lookback >= 0
    assert type(result.max_workers) is int
    assert 1 <= result.max_workers <= 16
    assert type(result.fetch_units) is bool
    assert result.recently_active in (None, True, False)
    assert bool(result.aws_access_key_id) == bool(result.aws_secret_access_key)
    assert not result.aws_session_token or result.aws_access_key_id
    for region in [result.region, *result.regions]:
        if region:
            assert _usable_region(region), f"accepted region {region!r}"
    if result.aws_endpoint_url:
        assert result.aws_endpoint_url.startswith(("http://", "https://"))


# Known inputs that escaped as other exceptions when this file was written: kept as plain
# cases so that they are checked on every run, whatever the random search happens to draw.
# str.isdigit is true for "²" (int() refuses it) and int() refuses more than 4,300 digits.
INTEGER_SETTINGS = [name for name in SETTING_NAMES if _kind(name) == "integer"]
UNREADABLE_NUMBERS = ["²", " ³", "1" * 4301]
CALENDAR_ENDS = [
    ("start_date", "0001-01-01T00:00:00+01:00"),
    ("end_date", "9999-12-31T23:59:59-01:00"),
]


def refusal_of(setting: str, value: Any) -> SettingsError:
    """The SettingsError for ``setting: value`` in an otherwise valid config, checked."""
    config = {"cloudwatch_metrics_namespace": "AWS/EC2", "region": "us-east-1", setting: value}
    with pytest.raises(SettingsError) as raised:
        parse_settings(config, NOW)
    assert raised.value.setting == setting
    check_refusal(raised.value, config)
    return raised.value


@pytest.mark.parametrize("setting", INTEGER_SETTINGS)
def test_digit_strings_int_cannot_read_are_refused_as_settings_errors(setting: str) -> None:
    for value in UNREADABLE_NUMBERS:
        refusal_of(setting, value)


@pytest.mark.parametrize(("setting", "value"), CALENDAR_ENDS)
def test_dates_whose_utc_time_is_off_the_calendar_are_refused_as_settings_errors(
    setting: str, value: str
) -> None:
    refusal_of(setting, value)


@pytest.mark.parametrize("region", ["us-east-1\n", "us-east-\u0661"])
def test_a_region_name_with_anything_around_or_in_it_is_refused(region: str) -> None:
    """``$`` matches before a final newline and ``\\d`` matches any Unicode digit.

    With aws_endpoint_url set (so no list of known regions applies), botocore refuses
    ``us-east-\u0661`` with InvalidRegionError when the client is made, mid-run.
    """
    config = {
        "cloudwatch_metrics_namespace": "AWS/EC2",
        "region": region,
        "aws_endpoint_url": "http://localhost:4566",
    }
    with pytest.raises(SettingsError) as raised:
        parse_settings(config, NOW)
    assert raised.value.setting == "region"
    check_refusal(raised.value, config)


# -- through the CLI ---------------------------------------------------------------------------


@pytest.fixture
def config_dir() -> Iterator[Path]:
    """A directory for config files (tmp_path is per test; hypothesis runs many examples)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-settings-") as path:
        yield Path(path)


def run_cli(directory: Path, config: dict[str, Any]) -> subprocess.CompletedProcess:
    """A sync through the installed command, as a scheduler starts it."""
    path = directory / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return subprocess.run(
        [str(CLI), "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )


def check_cli_refusal(result: subprocess.CompletedProcess, config: dict[str, Any]) -> list[str]:
    """Exit code 2, nothing on stdout, one line on stderr besides the SDK's INFO log lines."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if not _LOG_LINE.match(line)]
    assert len(lines) == 1, lines
    for secret in secret_texts(config):
        assert secret not in result.stderr
    return lines


# A few examples, each a process start (~0.7 s); no shrinking, which would start hundreds more:
# a failure is reported with the config that failed, as drawn.
@settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(config=configs())
def test_cli_refuses_a_bad_config_in_one_line_with_exit_code_2(
    config_dir: Path, config: dict[str, Any]
) -> None:
    """Configs the settings refuse; those that crash parse_settings are the tests above.

    The expected line is parse_settings' refusal of the config as the SDK reads the file
    (its JSON reader makes every non-integer number a Decimal).
    """
    try:
        text = json.dumps(config)
    except (TypeError, ValueError):
        assume(False)  # Decimals (as the SDK reads numbers) have no JSON text to write
        raise
    as_read = load_json(text)
    try:
        parse_settings(as_read, dt.datetime.now(UTC))
    except SettingsError as exc:
        expected = f"{TapCloudWatchMetrics.name}: {exc}"
    except Exception:
        assume(False)  # a crash of parse_settings itself: see the in-process tests
        raise
    else:
        assume(False)  # a usable config would go on to call AWS
        return
    lines = check_cli_refusal(run_cli(config_dir, config), config)
    assert lines == [expected]


@pytest.mark.parametrize(
    ("setting", "value"), [("period", "²"), ("start_date", "0001-01-01T00:00:00+01:00")]
)
def test_cli_refuses_values_python_cannot_convert_in_one_line(
    config_dir: Path, setting: str, value: str
) -> None:
    config = {"cloudwatch_metrics_namespace": "AWS/EC2", "region": "us-east-1", setting: value}
    lines = check_cli_refusal(run_cli(config_dir, config), config)
    assert f"Invalid setting '{setting}'" in lines[0]
