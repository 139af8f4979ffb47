"""The SDK's standard tap tests, against a moto CloudWatch seeded with recent data.

These checks are broad but shallow (see DESIGN.md section 3: some always pass); keys, values
and state are proven by test_sync_moto.py and test_fake_api.py.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from singer_sdk.testing import get_tap_test_class

from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.conftest import BASE_CONFIG, REGION, put_points

CONFIG = {**BASE_CONFIG, "statistics": ["Average", "Maximum", "SampleCount"]}

_StandardTests = get_tap_test_class(TapCloudWatchMetrics, config=CONFIG)


class TestTapCloudWatchMetrics(_StandardTests):  # type: ignore[misc, valid-type]
    """Standard tests; a moto CloudWatch with two hours of data lives for the whole class."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def moto_cloudwatch(cls) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as patch:
            for name in list(os.environ):
                if name.startswith(("AWS_", "TAP_CLOUDWATCH_METRICS_")):
                    patch.delenv(name, raising=False)
            with mock_aws():
                client = boto3.client("cloudwatch", region_name=REGION)
                now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
                for instance in ("i-1", "i-2", "i-3"):
                    points = {
                        now - dt.timedelta(minutes=m): [float(m % 17), float(m % 5)]
                        for m in range(120)
                    }
                    put_points(
                        client,
                        CONFIG["cloudwatch_metrics_namespace"],
                        "CPUUtilization",
                        {"InstanceId": instance},
                        points,
                        unit="Percent",
                    )
                yield
