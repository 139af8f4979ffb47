"""AWS authentication as AWS users expect it, against moto (CloudWatch and STS in-process).

Role assumption (ARN, external id, session name, duration) with credentials renewed before they
expire; a profile's region when ``region`` is unset; and the default chain (environment keys,
web identity).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import botocore.credentials
import pytest

from tap_cloudwatch_metrics.settings import SettingsError, parse_settings
from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import BASE_CONFIG, NOW, SECRET, put_points
from tests.singer_io import run_sync

ROLE = "arn:aws:iam::123456789012:role/CloudWatchReader"
NS = BASE_CONFIG["cloudwatch_metrics_namespace"]
START = (NOW - dt.timedelta(minutes=60)).isoformat()


def _seed(client: Any) -> None:
    minute = dt.timedelta(minutes=1)
    points = {NOW - i * minute: [float(i)] for i in range(1, 90)}
    put_points(client, NS, "CPU", {"InstanceId": "i-1"}, points)


class AssumeRoleSpy:
    """Every AssumeRole request the tap's credentials make (kwargs), and the keys returned."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[dict[str, Any]] = []
        self.keys: list[str] = []
        real = botocore.credentials.AssumeRoleCredentialFetcher._get_credentials

        def spy(fetcher: Any) -> dict[str, Any]:
            self.requests.append(fetcher._assume_role_kwargs())
            response = real(fetcher)
            self.keys.append(response["Credentials"]["AccessKeyId"])
            return response

        monkeypatch.setattr(
            botocore.credentials.AssumeRoleCredentialFetcher, "_get_credentials", spy
        )


def _signing_key(tap: TapCloudWatchMetrics) -> str:
    return tap.client._request_signer._credentials.get_frozen_credentials().access_key


def test_the_role_is_assumed_with_every_option_and_its_keys_sign_the_requests(
    cloudwatch: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(cloudwatch)
    spy = AssumeRoleSpy(monkeypatch)
    config = {
        **BASE_CONFIG,
        "start_date": START,
        "aws_assume_role_arn": ROLE,
        "aws_assume_role_external_id": "ext-id-1234",
        "aws_assume_role_session_name": "nightly-load",
        "aws_assume_role_duration_seconds": 1800,
    }
    result = run_sync(config)

    assert result.records
    assert spy.requests == [
        {
            "RoleArn": ROLE,
            "RoleSessionName": "nightly-load",
            "DurationSeconds": 1800,
            "ExternalId": "ext-id-1234",
        }
    ]
    assert _signing_key(result.tap) == spy.keys[0]
    assert spy.keys[0] != BASE_CONFIG["aws_access_key_id"]


def test_role_credentials_are_renewed_before_they_expire(
    cloudwatch: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long run: 55 minutes into one-hour role credentials, the next request assumes the role
    again (botocore renews inside 10 minutes of expiry) and signs with the new keys."""
    _seed(cloudwatch)
    spy = AssumeRoleSpy(monkeypatch)
    config = {**BASE_CONFIG, "start_date": START, "aws_assume_role_arn": ROLE}
    tap = TapCloudWatchMetrics(config=config)
    tap.client.list_metrics(Namespace=NS)
    credentials = tap.client._request_signer._credentials
    assert len(spy.requests) == 1
    assert credentials.refresh_needed() is False
    first_expiry = credentials._expiry_time

    real_now = botocore.credentials._local_now
    later = lambda: real_now() + dt.timedelta(minutes=55)  # noqa: E731
    monkeypatch.setattr(botocore.credentials, "_local_now", later)
    monkeypatch.setattr(credentials, "_time_fetcher", later)
    assert credentials.refresh_needed() is True
    tap.client.list_metrics(Namespace=NS)

    assert len(spy.requests) == 2
    assert credentials._expiry_time > first_expiry
    assert spy.keys[1] != spy.keys[0]
    # (moto dates the new credentials from the real clock, so under the shifted clock they
    # look close to expiry again: reading them renews once more, with the latest keys used.)
    assert _signing_key(tap) == spy.keys[-1]


def test_a_profile_s_region_is_used_when_region_is_unset(
    cloudwatch: Any, clock: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    eu = boto3.client(
        "cloudwatch",
        region_name="eu-west-2",
        aws_access_key_id="AKIDTESTTESTTEST",
        aws_secret_access_key=SECRET,
    )
    _seed(eu)
    config_file = tmp_path / "aws-config"
    config_file.write_text("[profile reader]\nregion = eu-west-2\n")
    (tmp_path / "aws-credentials").write_text(
        f"[reader]\naws_access_key_id = AKIDPROFILEKEY1\naws_secret_access_key = {SECRET}\n"
    )
    config = {
        "cloudwatch_metrics_namespace": NS,
        "aws_profile": "reader",
        "start_date": START,
    }
    result = run_sync(config)
    assert result.tap.region == "eu-west-2"
    assert result.records
    assert {r["region"] for r in result.records} == {"eu-west-2"}


def test_the_default_chain_reads_environment_keys(
    cloudwatch: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(cloudwatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRON1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-from-environ")
    config = {"cloudwatch_metrics_namespace": NS, "region": "us-east-1", "start_date": START}
    result = run_sync(config)
    assert result.records
    frozen = result.tap.client._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.token) == ("AKIDFROMENVIRON1", "token-from-environ")


def test_the_default_chain_assumes_a_web_identity_role(
    cloudwatch: Any, clock: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EKS / GitHub Actions style: AWS_ROLE_ARN and a token file, no keys anywhere."""
    _seed(cloudwatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "")  # moto sets fake ones; empty is "not set" to botocore
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.fake.token")
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    config = {"cloudwatch_metrics_namespace": NS, "region": "us-east-1", "start_date": START}
    result = run_sync(config)
    assert result.records
    assert result.tap.client._request_signer._credentials.method == "assume-role-with-web-identity"


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"aws_assume_role_arn": "CloudWatchReader"}, "aws_assume_role_arn"),
        ({"aws_assume_role_arn": "arn:aws:iam::123:role/x"}, "aws_assume_role_arn"),
        ({"aws_assume_role_external_id": "x"}, "aws_assume_role_external_id"),
        (
            {"aws_assume_role_arn": ROLE, "aws_assume_role_duration_seconds": 60},
            ("aws_assume_role_duration_seconds"),
        ),
        (
            {"aws_assume_role_arn": ROLE, "aws_assume_role_session_name": "a b"},
            ("aws_assume_role_session_name"),
        ),
    ],
)
def test_bad_role_settings_are_refused(override: dict[str, Any], setting: str) -> None:
    with pytest.raises(SettingsError) as raised:
        parse_settings({**BASE_CONFIG, **override}, NOW)
    assert raised.value.setting == setting
