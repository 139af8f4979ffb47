"""Shared fixtures: no real AWS, a fixed clock, and a moto CloudWatch."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.fakes import no_network

UTC = dt.timezone.utc
# A fixed "now" on a period boundary, so expected windows can be written down.
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
REGION = "us-east-1"
SECRET = "SECRET-do-not-print-9f8e7d6c5b4a"

BASE_CONFIG: dict[str, Any] = {
    "aws_access_key_id": "AKIDTESTTESTTEST",
    "aws_secret_access_key": SECRET,
    "region": REGION,
    "cloudwatch_metrics_namespace": "Test/App",
    "period": 300,
    "statistics": ["Average"],
}


@pytest.fixture(autouse=True)
def isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No test sees the developer's AWS settings, files or endpoints."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "TAP_CLOUDWATCH_METRICS_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def set_now(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> None:
    """Make the tap believe it runs at ``when``."""
    monkeypatch.setattr("tap_cloudwatch_metrics.tap._wall_clock", when.timestamp)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any request the fake does not answer fails instead of reaching the network. Not autouse:
    the demo's tests talk HTTP to a local moto server. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("offline")``."""
    no_network(monkeypatch)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the tap's clock: ``clock(datetime)``; starts at NOW."""
    set_now(monkeypatch, NOW)
    return lambda when: set_now(monkeypatch, when)


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    """A moto CloudWatch (in-process) and a client to seed it."""
    with mock_aws():
        yield boto3.client(
            "cloudwatch",
            region_name=REGION,
            aws_access_key_id="AKIDTESTTESTTEST",
            aws_secret_access_key=SECRET,
        )


def put_points(
    client: Any,
    namespace: str,
    metric_name: str,
    dimensions: dict[str, str],
    points: dict[dt.datetime, list[float]],
    unit: str = "Count",
) -> None:
    """Publish samples (several per timestamp allowed) in calls of at most 1,000.

    Dimensions go out sorted by name: moto (unlike CloudWatch) matches a query's dimensions
    only in the order they were published, and the tap asks in sorted order.
    """
    data = [
        {
            "MetricName": metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())],
            "Timestamp": when,
            "Value": value,
            "Unit": unit,
        }
        for when, values in points.items()
        for value in values
    ]
    for start in range(0, len(data), 1000):
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])
