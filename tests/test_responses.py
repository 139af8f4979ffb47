"""The fast GetMetricData decoder gives what botocore's parser gives, and odd values are safe."""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from typing import Any

import boto3
import botocore.parsers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_cloudwatch_metrics import aws
from tap_cloudwatch_metrics.fetcher import CloudWatchDataError
from tap_cloudwatch_metrics.responses import (
    decode_get_metric_data,
    normalise_points,
    to_epoch,
    to_value,
)
from tests.conftest import NOW as NOW_DT
from tests.fakes import FakeCloudWatch, make_fake_tap, run_sync

NOW = int(NOW_DT.timestamp())
UTC = dt.timezone.utc


pytestmark = pytest.mark.usefixtures("offline")


@functools.cache
def _output_shape() -> Any:
    model = boto3.Session(region_name="us-east-1")._session.get_service_model("cloudwatch")
    return model.operation_model("GetMetricData").output_shape


def _botocore_parse(body: bytes) -> dict[str, Any]:
    """botocore's own JSON parse of a GetMetricData body, with the tap's timestamp parser."""
    parser = botocore.parsers.create_parser("json")
    parser._timestamp_parser = aws.utc_timestamp_parser
    return parser.parse({"body": body, "headers": {}, "status_code": 200}, _output_shape())


def _canonical(parsed: dict[str, Any]) -> dict[str, Any]:
    """What the fetcher reads of a parsed answer, with points normalised."""
    results = []
    for item in parsed.get("MetricDataResults") or []:
        epochs, floats, dropped = normalise_points(
            item.get("Timestamps") or [], item.get("Values") or []
        )
        results.append(
            {
                "Id": item.get("Id"),
                "Label": item.get("Label"),
                "StatusCode": item.get("StatusCode"),
                "Messages": item.get("Messages"),
                "points": [
                    (t, "nan" if math.isnan(v) else v) for t, v in zip(epochs, floats, strict=True)
                ],
                "dropped": dropped,
            }
        )
    return {
        "results": results,
        "NextToken": parsed.get("NextToken"),
        "Messages": parsed.get("Messages"),
    }


_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)
_epoch = st.integers(min_value=0, max_value=4_102_444_800)
_text = st.text(max_size=20)


@st.composite
def _results(draw: st.DrawFn) -> dict[str, Any]:
    points = draw(st.lists(st.tuples(_epoch, _value), max_size=30))
    item: dict[str, Any] = {
        "Id": draw(st.from_regex(r"q[0-9]{1,3}", fullmatch=True)),
        "Timestamps": [t for t, _ in points],
        "Values": [v for _, v in points],
    }
    if draw(st.booleans()):
        item["Label"] = draw(_text)
    if draw(st.booleans()):
        item["StatusCode"] = draw(st.sampled_from(["Complete", "PartialData", "InternalError"]))
    if draw(st.booleans()):
        item["Messages"] = [{"Code": draw(_text), "Value": draw(_text)}]
    return item


@settings(max_examples=200, deadline=None)
@given(
    results=st.lists(_results(), max_size=5),
    token=st.one_of(st.none(), _text),
    messages=st.one_of(st.none(), st.lists(st.fixed_dictionaries({"Code": _text}), max_size=2)),
)
def test_fast_decoding_reads_what_botocore_reads(
    results: list[dict[str, Any]], token: str | None, messages: list | None
) -> None:
    document: dict[str, Any] = {"MetricDataResults": results}
    if token is not None:
        document["NextToken"] = token
    if messages is not None:
        document["Messages"] = messages
    body = json.dumps(document).encode()
    fast = decode_get_metric_data(body)
    assert fast is not None
    assert _canonical(fast) == _canonical(_botocore_parse(body))


def test_null_members_are_left_out_as_botocore_does() -> None:
    body = b'{"MetricDataResults": [], "NextToken": null, "Messages": null, "Other": 1}'
    assert decode_get_metric_data(body) == {"MetricDataResults": []}


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"a": NaN}'])
def test_bodies_it_cannot_read_are_left_to_botocore(body: bytes) -> None:
    assert decode_get_metric_data(body) is None


def test_special_values_become_floats_and_junk_is_counted_not_emitted() -> None:
    iso = dt.datetime.fromtimestamp(NOW, UTC).isoformat()
    epochs, floats, dropped = normalise_points(
        [NOW, iso, float(NOW), "yesterday", None, True, NOW],
        ["Infinity", 2, 1.5, 1.0, 1.0, 1.0, {"x": 1}],
    )
    assert epochs == [NOW, NOW, NOW]
    assert floats == [math.inf, 2.0, 1.5]
    assert all(type(v) is float for v in floats)
    assert dropped == 4
    assert to_value("NaN") != to_value("NaN")  # NaN
    assert to_value(10**400) is None
    assert to_epoch(math.nan) is None


def test_mismatched_timestamps_and_values_fail_the_call_not_pair_up_wrongly() -> None:
    with pytest.raises(ValueError):
        normalise_points([NOW, NOW + 60], ["NaN"])


def test_the_tap_decodes_every_get_metric_data_answer_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[int] = []
    real = aws.decode_get_metric_data

    def counting(body: bytes) -> dict[str, Any] | None:
        answer = real(body)
        decoded.append(answer is not None)
        return answer

    monkeypatch.setattr(aws, "decode_get_metric_data", counting)
    fake = FakeCloudWatch()
    fake.add_many("Fake/App", "CPU", 700, start=NOW - 7200, end=NOW + 3600)
    config = {
        "start_date": dt.datetime.fromtimestamp(NOW - 3600, UTC).isoformat(),
        "delay_seconds": 0,
        "fetch_units": False,
    }
    out = run_sync(make_fake_tap(config, fake, now=NOW))
    assert decoded == [True] * fake.count("GetMetricData")
    assert len(decoded) == 2
    assert set(out.rows()) == fake.expected(NOW - 3600, NOW, 300, ["Average"])


def test_a_page_with_more_values_than_timestamps_fails_the_run_clearly() -> None:
    fake = FakeCloudWatch()
    fake.add_many("Fake/App", "CPU", 3, start=NOW - 7200, end=NOW + 3600)

    def corrupt(**kwargs: Any) -> None:
        response = kwargs["response_dict"]
        document = json.loads(response["body"])
        document["MetricDataResults"][0]["Values"].append(1.0)
        response["body"] = json.dumps(document).encode()

    config = {
        "start_date": dt.datetime.fromtimestamp(NOW - 3600, UTC).isoformat(),
        "delay_seconds": 0,
        "fetch_units": False,
    }
    tap = make_fake_tap(config, fake, now=NOW)
    tap.client.meta.events.register_first("before-parse.cloudwatch.GetMetricData", corrupt)
    failed = run_sync(tap, expect_error=True)
    assert isinstance(failed.error, CloudWatchDataError)
    assert "12 timestamps and 13 values" in str(failed.error)
    assert failed.records == []
