"""Decoding GetMetricData answers: fast on the wire, forgiving of odd values.

botocore decodes a JSON response and then walks it against the service model, calling a Python
handler for every timestamp and every value: on a 500-query page of 6,000 datapoints that walk
cost more than the tap's own work on the rows. For GetMetricData's successful JSON answers the
tap decodes the body itself with msgspec into the same structure botocore would build, except
that timestamps stay epoch numbers (the tap wants epochs anyway). Anything else (errors, other
protocols, bodies msgspec refuses) goes through botocore as before.

The normalisers below are used on either path: a value may arrive as a number or, in AWS's
JSON protocol, as the strings ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, and a timestamp as
epoch seconds or an ISO 8601 string.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import msgspec
from botocore.utils import parse_timestamp

_DECODER = msgspec.json.Decoder()
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_TOP_LEVEL = ("MetricDataResults", "NextToken", "Messages")


def decode_get_metric_data(body: bytes) -> dict[str, Any] | None:
    """The output members of a JSON GetMetricData body, or None to leave it to botocore.

    Only the members the model defines are kept, and a member that is JSON ``null`` is left out,
    as botocore does.
    """
    try:
        document = _DECODER.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(document, dict):
        return None
    return {key: document[key] for key in _TOP_LEVEL if document.get(key) is not None}


def to_epoch(value: Any) -> int | None:
    """Epoch seconds of a wire or parsed timestamp; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return _epoch_of_text(value) if isinstance(value, str) else None


def _epoch_of_text(value: str) -> int | None:
    try:
        return int(parse_timestamp(value).timestamp())
    except (ValueError, TypeError, OverflowError):
        return None


def to_value(value: Any) -> float | None:
    """A datapoint value as a float (NaN and infinities included); None when it is not one."""
    if type(value) is float:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str):
        return _SPECIAL_FLOATS.get(value)
    return None


def normalise_points(
    timestamps: list[Any], values: list[Any]
) -> tuple[list[int], list[float], int]:
    """Paired epochs and floats of one query's page, and how many pairs were unreadable.

    The common case (int epochs from the fast decoder, float values) is returned as it is.
    """
    if set(map(type, timestamps)) <= {int} and set(map(type, values)) <= {float}:
        return timestamps, values, 0
    epochs: list[int] = []
    floats: list[float] = []
    dropped = 0
    for raw_timestamp, raw_value in zip(timestamps, values, strict=True):
        epoch, value = to_epoch(raw_timestamp), to_value(raw_value)
        if epoch is None or value is None:
            dropped += 1
            continue
        epochs.append(epoch)
        floats.append(value)
    return epochs, floats, dropped
