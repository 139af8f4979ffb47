"""Failures a scheduled run meets: retried when they pass, one clear line when they do not.

The tap's real CLI runs in-process against the fake (``install``); stderr is read at the file
descriptor, so the SDK's log lines and the tap's error line are both seen.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from botocore.retries import standard

from tap_cloudwatch_metrics.errors import explain
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    FAKE_CONFIG,
    TRANSPORT_FAULTS,
    FakeCloudWatch,
    fast_retries,
    install,
    make_fake_tap,
    run_sync,
    wall_clock,
)

NOW = int(NOW_DT.timestamp())
HOUR = 3600
NS = FAKE_CONFIG["cloudwatch_metrics_namespace"]
START = dt.datetime.fromtimestamp(NOW - HOUR, dt.timezone.utc).isoformat()
KEY_ID = "AKIAFAKEKEYID0SECRET"
SECRET_KEY = "fake/Secret+Key0123456789abcdefSECRET"
TOKEN = "FwoGZXIvYXdzFAKE-session-token-SECRET"


pytestmark = pytest.mark.usefixtures("offline")


def _fake(series: int = 30) -> FakeCloudWatch:
    fake = FakeCloudWatch()
    fake.add_many(NS, "CPU", series, start=NOW - 2 * HOUR, end=NOW + HOUR)
    return fake


def _config(**extra: Any) -> dict[str, Any]:
    return {"start_date": START, "delay_seconds": 0, "fetch_units": False, **extra}


def _expected(fake: FakeCloudWatch) -> set:
    return fake.expected(NOW - HOUR, NOW, 300, ["Average"])


def _message(line: str) -> dict[str, Any]:
    message = json.loads(line)
    assert isinstance(message, dict)
    return message


class CliRun:
    """Exit code, stdout Singer messages and stderr lines of one in-process CLI run."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err
        self.messages = [_message(line) for line in out.splitlines() if line.startswith('{"type"')]

    @property
    def error_lines(self) -> list[str]:
        return [
            line for line in self.err.splitlines() if line.startswith("tap-cloudwatch-metrics:")
        ]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]


def run_cli(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    config: dict[str, Any],
    *extra: str,
    state: str | None = None,
) -> CliRun:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({**FAKE_CONFIG, **config}))
    args = ["--config", str(config_path), *extra]
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(state)
        args += ["--state", str(state_path)]
    capfd.readouterr()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # Earlier in-process CLI runs (other test modules) may have left handlers on streams
    # that are closed by now; the run gets only its own.
    root.handlers[:] = []
    try:
        with wall_clock(NOW), pytest.raises(SystemExit) as exited:
            TapCloudWatchMetrics.cli(args=args)
    finally:
        # Each CLI run adds a root handler on the stderr of the moment (the SDK's setup);
        # in one process those would outlive this test's captured stderr.
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capfd.readouterr()
    code = exited.value.code
    return CliRun(code if isinstance(code, int) else (0 if code is None else 1), *captured)


# -- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(TRANSPORT_FAULTS))
@pytest.mark.parametrize("operation", ["ListMetrics", "GetMetricData"])
def test_transport_faults_that_clear_are_retried_and_nothing_is_lost(
    kind: str, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake = _fake()
    fake.fail_next(operation, transport=kind, times=3)
    out = run_sync(make_fake_tap(_config(), fake, now=NOW))
    assert [c.error for c in fake.calls if c.operation == operation][:4] == [kind] * 3 + [None]
    assert set(out.rows()) == _expected(fake)


def test_backoff_is_exponential_with_jitter_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's delays (recorded, not slept): random in [0, 2^(n-1)] seconds, at most 20."""
    delays: list[tuple[int, float]] = []
    real = standard.ExponentialBackoff.delay_amount
    fast_retries(monkeypatch)  # no rate-limiter waits; the backoff is recorded below

    def record(self: Any, context: Any) -> float:
        delays.append((context.attempt_number, real(self, context)))
        return 0

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", record)
    random.seed(7)
    fake = _fake(5)
    for _ in range(12):
        fake.fail_next("ListMetrics", code="Throttling", times=7)
        run_sync(make_fake_tap(_config(max_attempts=8), fake, now=NOW))
        fake.calls.clear()
    by_attempt: dict[int, list[float]] = {}
    for attempt, delay in delays:
        by_attempt.setdefault(attempt, []).append(delay)
    assert sorted(by_attempt) == list(range(1, 8))
    for attempt, values in by_attempt.items():
        assert all(0 <= v <= min(20, 2 ** (attempt - 1)) for v in values), (attempt, values)
        assert len(set(values)) > 1, f"no jitter at attempt {attempt}: {values}"
    assert max(by_attempt[7]) > max(by_attempt[1]) * 4  # the ceiling grows


def test_max_attempts_bounds_the_retries_then_the_run_fails_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake = _fake()
    fake.fail_next("GetMetricData", code="ThrottlingException", times=None)
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config(max_attempts=4))

    assert run.code == 1
    assert fake.count("GetMetricData", answered_only=False) == 4
    assert run.error_lines == [
        "tap-cloudwatch-metrics: error: CloudWatch still throttled GetMetricData after 4 "
        "attempts (ThrottlingException): raise max_attempts, lower max_workers or run less "
        "often. Rows up to the last STATE are delivered; the next run resumes from there."
    ]
    assert "Traceback" not in run.err
    assert run.records == []


# -- errors a user can act on -------------------------------------------------------------------

CLIENT_ERRORS = [
    ("ListMetrics", "InvalidClientTokenId", 403, "check aws_access_key_id"),
    ("ListMetrics", "UnrecognizedClientException", 400, "check aws_access_key_id"),
    ("ListMetrics", "SignatureDoesNotMatch", 403, "aws_secret_access_key"),
    ("ListMetrics", "ExpiredToken", 400, "renew aws_session_token"),
    ("GetMetricData", "ExpiredTokenException", 400, "renew aws_session_token"),
    ("ListMetrics", "AccessDenied", 403, "IAM permission cloudwatch:ListMetrics"),
    ("GetMetricData", "AccessDeniedException", 403, "IAM permission cloudwatch:GetMetricData"),
    ("GetMetricData", "InvalidParameterValue", 400, "refused a parameter of GetMetricData"),
]


@pytest.mark.parametrize(("operation", "code", "status", "advice"), CLIENT_ERRORS)
def test_aws_errors_end_the_run_in_one_line_without_traceback(
    operation: str,
    code: str,
    status: int,
    advice: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_retries(monkeypatch)
    fake = _fake()
    fake.fail_next(operation, code=code, status=status, times=None)
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config())

    assert run.code == 1
    assert len(run.error_lines) == 1, run.err
    line = run.error_lines[0]
    assert line.startswith("tap-cloudwatch-metrics: error: ")
    assert f"({code}" in line
    assert advice in line
    assert "Traceback" not in run.err
    # Not retried: a credentials or permission error does not pass by waiting.
    assert fake.count(operation, answered_only=False) == 1


def test_the_traceback_is_there_at_debug_level(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake()
    fake.fail_next("ListMetrics", code="AccessDenied", status=403, times=None)
    install(monkeypatch, fake)
    monkeypatch.setenv("TAP_CLOUDWATCH_METRICS_LOGLEVEL", "DEBUG")
    run = run_cli(tmp_path, capfd, _config())
    assert run.code == 1
    assert "Traceback" in run.err
    assert "botocore.exceptions.ClientError" in run.err


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("endpoint_unreachable", "Could not reach https://monitoring.us-east-1.amazonaws.com/"),
        ("connect_timeout", "Could not connect to https://monitoring.us-east-1.amazonaws.com/"),
        ("read_timeout", "did not answer within request_timeout, 3 attempts"),
        ("connection_reset", "kept failing"),
    ],
)
def test_an_unreachable_endpoint_ends_the_run_in_one_line(
    kind: str,
    said: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast_retries(monkeypatch)
    fake = _fake()
    fake.fail_next("ListMetrics", transport=kind, times=None)
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config(max_attempts=3))
    assert run.code == 1
    assert len(run.error_lines) == 1, run.err
    assert said in run.error_lines[0]
    assert "Traceback" not in run.err
    assert fake.count("ListMetrics", answered_only=False) == 3


def test_an_unknown_region_is_refused_before_any_request(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake()
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config(region="xx-nowhere-7"))
    assert run.code == 2
    assert len(run.error_lines) == 1
    assert "Invalid setting 'region': 'xx-nowhere-7' is not a region" in run.error_lines[0]
    assert fake.calls == []


def test_an_unknown_region_is_accepted_with_a_custom_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake()
    config = _config(region="xx-nowhere-7", aws_endpoint_url="http://localhost:4566")
    out = run_sync(make_fake_tap(config, fake, now=NOW))
    assert len(out.records) == 30 * 12


def test_an_unknown_exception_is_a_bug_and_keeps_its_traceback() -> None:
    assert explain(ZeroDivisionError("x"), max_attempts=3) is None


# -- state files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "a JSON list where a state object was expected"),
        ('"bookmarks"', "a JSON str where a state object was expected"),
    ],
)
def test_an_unreadable_state_file_is_refused_in_one_line(
    text: str,
    problem: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake()
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config(), state=text)
    assert run.code == 2
    assert len(run.error_lines) == 1
    assert "Invalid setting '--state'" in run.error_lines[0]
    assert problem in run.error_lines[0]
    assert "Traceback" not in run.err
    assert fake.calls == []


def _bookmarked_state(fake: FakeCloudWatch) -> dict[str, Any]:
    return run_sync(make_fake_tap(_config(), fake, now=NOW - 1800)).final_state


def test_foreign_and_older_state_is_ignored_with_a_warning_and_the_rest_is_used(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake()
    good = _bookmarked_state(fake)["bookmarks"]["metrics"]["partitions"]
    state = {
        "bookmarks": {
            "some_other_stream": {"replication_key_value": "2020-01-01"},
            "metrics": {
                "replication_key_value": "2026-01-15T11:00:00+00:00",
                "last_run_end": "yesterday",
                "partitions": [
                    *good[:10],
                    {"context": {"namespace": NS, "metric_name": "CPU"}},
                    {
                        "context": {"series_id": good[10]["context"]["series_id"]},
                        "replication_key_value": 12345,
                    },
                    "junk",
                ],
            },
        }
    }
    install(monkeypatch, fake)
    run = run_cli(tmp_path, capfd, _config(), state=json.dumps(state))

    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    warnings = [line for line in run.err.splitlines() if "State: " in line]
    assert len(warnings) == 4, warnings
    assert any("other streams ignored: 'some_other_stream'" in w for w in warnings)
    assert any("one bookmark for the whole stream" in w for w in warnings)
    assert any("last_run_end='yesterday' is not a timestamp" in w for w in warnings)
    assert any("3 of 13 state partitions are not this tap's" in w for w in warnings)
    # The ten good bookmarks were used: those series are read only after their bookmark.
    kept = {p["context"]["series_id"]: p["replication_key_value"] for p in good[:10]}
    for record in run.records:
        if record["series_id"] in kept:
            assert record["timestamp"] > kept[record["series_id"]]
    assert {r["series_id"] for r in run.records} >= set(kept)
    assert "some_other_stream" not in json.dumps(run.messages[-1])


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"bookmarks": None},
        {"bookmarks": []},
        {"bookmarks": {"metrics": "x"}},
        {"bookmarks": {"metrics": {"partitions": {"a": 1}}}},
        {"currently_syncing": "metrics"},
    ],
)
def test_odd_states_never_crash_the_run(state: dict[str, Any]) -> None:
    fake = _fake(3)
    out = run_sync(make_fake_tap(_config(), fake, state, now=NOW))
    assert set(out.rows()) == _expected(fake)


# -- secrets ------------------------------------------------------------------------------------

SECRETS = (KEY_ID, SECRET_KEY, TOKEN)


def _secret_config(**extra: Any) -> dict[str, Any]:
    return _config(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY, aws_session_token=TOKEN, **extra
    )


@pytest.mark.parametrize(
    "scenario",
    ["success", "throttled", "signature", "settings", "about", "bad_state", "data_error"],
)
@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_no_secret_in_any_output_of_whole_runs_errors_included(
    scenario: str,
    level: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS may echo the key id in a message; botocore logs signed headers at DEBUG."""
    monkeypatch.setenv("TAP_CLOUDWATCH_METRICS_LOGLEVEL", level)
    fast_retries(monkeypatch)
    fake = _fake(5)
    install(monkeypatch, fake)
    config = _secret_config(max_attempts=2)
    extra: tuple[str, ...] = ()
    state = None
    expected_code = 0
    if scenario == "throttled":
        fake.fail_next("GetMetricData", code="Throttling", times=None)
        expected_code = 1
    elif scenario == "signature":
        fake.fail_next(
            "ListMetrics",
            code="SignatureDoesNotMatch",
            status=403,
            message=f"Credential={KEY_ID}/20260115/us-east-1/monitoring; secret {SECRET_KEY}",
            times=None,
        )
        expected_code = 1
    elif scenario == "settings":
        config["period"] = 7
        expected_code = 2
    elif scenario == "about":
        extra = ("--about", "--format", "json")
    elif scenario == "bad_state":
        state = f'{{"secret": "{SECRET_KEY}"'
        expected_code = 2
    elif scenario == "data_error":
        fake.force_status("InternalError", message=f"internal {KEY_ID}")
        expected_code = 1
    run = run_cli(tmp_path, capfd, config, *extra, state=state)

    assert run.code == expected_code, run.err
    everything = run.out + run.err
    for secret in SECRETS:
        assert secret not in everything, f"{scenario}: secret leaked"
    if scenario == "data_error":
        assert "**REDACTED**" in everything  # the error line quotes AWS, masked
