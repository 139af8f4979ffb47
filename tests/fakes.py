"""An in-memory CloudWatch behind a real boto3 client, for what moto cannot do.

:class:`FakeCloudWatch` answers at botocore's ``before-send.cloudwatch`` event: botocore still
builds, validates, signs and serializes every request, and parses, validates and times every
answer, so the tap's client code runs for real; only the socket is replaced. Requests arrive in
the JSON protocol (``X-Amz-Target: GraniteServiceVersion20100801.<Operation>``) and answers are
JSON bodies shaped like the service's (timestamps as epoch seconds; errors as ``__type`` plus the
``x-amzn-query-error: Code;Sender`` header of awsQueryCompatible services).

What it does that moto does not: GetMetricData pagination (a page holds at most ``page_points``
datapoints over all its queries, the rest behind ``NextToken`` with the same queries resent),
``PartialData``, per-query ``InternalError``/``Forbidden``, truncated answers, canned faults
(throttling, 5xx, access denied), request validation (500 queries, query ids, duplicate ids,
periods), buckets aligned at multiples of the period since the epoch, and 10,000+ series whose
values are computed on the fly.

Helpers: :func:`make_fake_tap` builds a tap whose client talks to a fake, :func:`run_sync`
runs a sync in-process and returns the Singer messages, :func:`state_violations` checks every
STATE against the RECORDs written before it.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import datetime as dt
import io
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import botocore.exceptions
from botocore.awsrequest import AWSResponse

UTC = dt.timezone.utc
SERVICE_EVENT = "before-send.cloudwatch"
TARGET_PREFIX = "GraniteServiceVersion20100801."
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
ERROR_NAMESPACE = "com.amazonaws.cloudwatch#"
MAX_QUERIES = 500
MAX_PAGE_POINTS = 100_800
LIST_PAGE_SIZE = 500
MAX_STATISTICS_POINTS = 1440
QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")
# The account the fake answers as; series of other accounts are its linked accounts.
OWN_ACCOUNT = "111111111111"
TRIMMED_MEAN = re.compile(r"^TM\((\d+(?:\.\d+)?)%:(\d+(?:\.\d+)?)%\)$")
HIGH_RESOLUTION_PERIODS = frozenset({1, 5, 10, 20, 30})
BASIC_STATISTICS = ("Average", "Sum", "SampleCount", "Maximum", "Minimum")
TWO_WEEKS = 14 * 86400
THREE_HOURS = 3 * 3600

DimensionKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, str, frozenset]


class FakeCloudWatchError(AssertionError):
    """The fake was asked something it does not implement (never answered with a guess)."""


class Row(NamedTuple):
    """One datapoint as a test compares it: identity of the series, statistic, time, value."""

    namespace: str
    metric_name: str
    dimensions: DimensionKey  # sorted (name, value) pairs
    statistic: str
    timestamp: int  # epoch seconds, start of the period
    value: float


def dimension_key(dimensions: Mapping[str, str] | Iterable[tuple[str, str]]) -> DimensionKey:
    """Sorted (name, value) pairs: a series' dimensions without their order."""
    items = dimensions.items() if isinstance(dimensions, Mapping) else dimensions
    return tuple(sorted(items))


def epoch(value: Any) -> int:
    """Epoch seconds of a record timestamp (ISO string), a datetime or a number."""
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return int(parsed.timestamp())
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return int(value)


def row_of(record: Mapping[str, Any]) -> Row:
    """The :class:`Row` of a RECORD's record."""
    return Row(
        record["namespace"],
        record["metric_name"],
        dimension_key(record["dimensions"] or {}),
        record["statistic"],
        epoch(record["timestamp"]),
        record["value"],
    )


def align_up(timestamp: int, period: int) -> int:
    return -(-timestamp // period) * period


def compute_statistic(statistic: str, values: Sequence[float]) -> float:
    """The fake's statistics; percentiles by nearest rank (exact, deterministic)."""
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "Sum":
        return float(sum(values))
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Maximum":
        return float(max(values))
    if statistic == "Minimum":
        return float(min(values))
    match = PERCENTILE.match(statistic)
    if match and float(match.group(1)) <= 100:
        ordered = sorted(values)
        rank = max(1, math.ceil(float(match.group(1)) / 100 * len(ordered)))
        return float(ordered[rank - 1])
    bounds = _trimmed_bounds(statistic)
    if bounds is not None:
        ordered = sorted(values)
        low = math.floor(bounds[0] / 100 * len(ordered))
        high = max(low + 1, math.ceil(bounds[1] / 100 * len(ordered)))
        kept = ordered[low:high]
        return sum(kept) / len(kept)
    msg = f"the fake does not compute statistic {statistic!r}"
    raise FakeCloudWatchError(msg)


def _trimmed_bounds(statistic: str) -> tuple[float, float] | None:
    """Percent bounds of a trimmed mean ``TM(a%:b%)``; ``IQM`` is ``TM(25%:75%)``."""
    if statistic == "IQM":
        return (25.0, 75.0)
    match = TRIMMED_MEAN.match(statistic)
    if not match:
        return None
    low, high = float(match.group(1)), float(match.group(2))
    return (low, high) if 0 <= low < high <= 100 else None


def statistic_supported(statistic: str) -> bool:
    if statistic in BASIC_STATISTICS or _trimmed_bounds(statistic) is not None:
        return True
    match = PERCENTILE.match(statistic)
    return bool(match) and float(match.group(1)) <= 100


def period_allowed(period: Any) -> bool:
    return isinstance(period, int) and (
        period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0)
    )


# -- stored series ---------------------------------------------------------------------------


class _Series:
    """One series: namespace, metric name, dimensions (in the order given) and unit."""

    # The owning account when it is a linked account's (cross-account observability).
    account_id: str | None = None

    def __init__(
        self, namespace: str, metric_name: str, dimensions: Mapping[str, str], unit: str | None
    ) -> None:
        self.namespace = namespace
        self.metric_name = metric_name
        self.dimensions: tuple[tuple[str, str], ...] = tuple(dimensions.items())
        self.dimension_key = dimension_key(self.dimensions)
        self.dimension_set = frozenset(self.dimensions)
        self.unit = unit

    @property
    def key(self) -> SeriesKey:
        return (self.namespace, self.metric_name, self.dimension_set)

    def samples(self, low: int, high: int) -> Iterator[tuple[int, float]]:
        """Samples with ``low <= timestamp < high``."""
        raise NotImplementedError

    def has_data(self, low: int, high: int) -> bool:
        return next(iter(self.samples(low, high)), None) is not None

    def api_metric(self) -> dict[str, Any]:
        return {
            "Namespace": self.namespace,
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
        }

    def buckets(self, start: int, end: int, period: int) -> list[tuple[int, list[float]]]:
        """Period buckets ``t = k * period`` with ``start <= t < end`` that hold samples."""
        first = align_up(start, period)
        grouped: dict[int, list[float]] = defaultdict(list)
        for timestamp, value in self.samples(first, align_up(end, period)):
            grouped[timestamp - timestamp % period].append(value)
        return sorted((t, v) for t, v in grouped.items() if t < end)


class _PointsSeries(_Series):
    def __init__(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        points: Mapping[int, float | Sequence[float]],
        unit: str | None,
    ) -> None:
        super().__init__(namespace, metric_name, dimensions, unit)
        self._points: dict[int, list[float]] = {}
        self._times: list[int] = []
        self.add(points)

    def add(self, points: Mapping[int, float | Sequence[float]]) -> None:
        for timestamp, values in points.items():
            samples = [values] if isinstance(values, int | float) else list(values)
            self._points.setdefault(int(timestamp), []).extend(float(v) for v in samples)
        self._times = sorted(self._points)

    def samples(self, low: int, high: int) -> Iterator[tuple[int, float]]:
        first = bisect.bisect_left(self._times, low)
        last = bisect.bisect_left(self._times, high)
        for timestamp in self._times[first:last]:
            for value in self._points[timestamp]:
                yield timestamp, value


class _GeneratedSeries(_Series):
    """One sample every ``step`` seconds in ``[start, end)``, its value computed when asked."""

    def __init__(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        unit: str | None,
        *,
        index: int,
        start: int,
        end: int,
        step: int,
        value: Callable[[int, int], float],
    ) -> None:
        super().__init__(namespace, metric_name, dimensions, unit)
        self.index, self.start, self.end, self.step, self.value = index, start, end, step, value

    def samples(self, low: int, high: int) -> Iterator[tuple[int, float]]:
        first = max(low, self.start)
        first = self.start + align_up(first - self.start, self.step)
        for timestamp in range(first, min(high, self.end), self.step):
            yield timestamp, self.value(self.index, timestamp)

    def has_data(self, low: int, high: int) -> bool:
        first = self.start + align_up(max(low, self.start) - self.start, self.step)
        return first < min(high, self.end)


def default_value(index: int, timestamp: int) -> float:
    """Deterministic, varied sample values for generated series."""
    return float((index * 31 + timestamp // 60 * 7) % 97) + (timestamp % 120) / 8


# -- faults, rules and the record of requests ------------------------------------------------


@dataclass
class Fault:
    """A canned error answer for the next requests of one operation."""

    code: str
    status: int
    message: str
    type_name: str | None = None
    times: int | None = 1  # None: until cleared
    after: int = 0  # let this many requests of the operation through first
    sender: str | None = None
    # A transport failure instead of an answer: a key of TRANSPORT_FAULTS (botocore's own
    # exceptions, raised where the HTTP send would fail).
    transport: str | None = None


TRANSPORT_FAULTS: dict[str, type[Exception]] = {
    "connection_reset": botocore.exceptions.ConnectionClosedError,
    "read_timeout": botocore.exceptions.ReadTimeoutError,
    "connect_timeout": botocore.exceptions.ConnectTimeoutError,
    "endpoint_unreachable": botocore.exceptions.EndpointConnectionError,
}


@dataclass
class QueryRule:
    """A forced per-query answer in GetMetricData for matching series and statistics.

    ``status`` ``InternalError``/``Forbidden`` answers that status with no datapoints;
    ``truncate_after`` keeps only datapoints at or before that timestamp and answers
    ``PartialData`` on the last page with no ``NextToken`` (a cut-short answer).
    """

    metric_name: str | None
    dimensions: frozenset | None
    statistic: str | None
    status: str | None = None
    truncate_after: int | None = None
    message: str = ""

    def matches(self, series_key: SeriesKey, statistic: str) -> bool:
        _, metric_name, dims = series_key
        return (
            (self.metric_name is None or self.metric_name == metric_name)
            and (self.dimensions is None or self.dimensions == dims)
            and (self.statistic is None or self.statistic == statistic)
        )


@dataclass
class Recorded:
    """One request as the fake received it; unpacks as ``(operation, request)``."""

    operation: str
    request: dict[str, Any]
    status: int = 200
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.operation, self.request))

    @property
    def ok(self) -> bool:
        return self.status == 200


class _ApiError(Exception):
    def __init__(
        self, code: str, message: str, status: int = 400, type_name: str | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.type_name = type_name or code


@dataclass
class _Cursor:
    signature: str
    points: list[list[tuple[int, float]]]
    offsets: list[int]
    truncated: list[bool]


class _Raw:
    """What botocore reads a response body from (``raw.stream()``)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


# -- the fake ---------------------------------------------------------------------------------


class FakeCloudWatch:
    """In-memory CloudWatch for ``ListMetrics``, ``GetMetricData`` and ``GetMetricStatistics``."""

    def __init__(self, *, page_points: int = MAX_PAGE_POINTS, now: int | None = None) -> None:
        self.page_points = page_points
        # With ``now`` set, ListMetrics shows only series with data in the two weeks before it
        # (three hours with RecentlyActive=PT3H), as CloudWatch does; None shows every series.
        self.now = now
        self.calls: list[Recorded] = []
        self.latency: dict[str, float] = {}
        self._series: dict[SeriesKey, _Series] = {}  # the own account's
        self._accounts: dict[tuple[str, SeriesKey], _Series] = {}  # every account's
        self._order: list[_Series] = []
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self._seen: Counter[str] = Counter()
        self._rules: list[QueryRule] = []
        self._cursors: dict[str, _Cursor] = {}
        self._tokens = itertools.count(1)
        self._lock = threading.RLock()
        # Requests being answered right now, and the most at once (per operation).
        self._in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()

    # -- data ----------------------------------------------------------------------------

    def add_series(
        self,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, str],
        points: Mapping[int, float | Sequence[float]],
        unit: str | None = "Percent",
        account_id: str | None = None,
    ) -> None:
        """Store samples ``{epoch_seconds: [values]}`` (added to an existing series' samples).

        ``account_id``: the series belongs to that linked account (not the fake's own).
        """
        series = _PointsSeries(namespace, metric_name, dimensions, points, unit)
        series.account_id = account_id
        existing = self._accounts.get((account_id or OWN_ACCOUNT, series.key))
        if isinstance(existing, _PointsSeries):
            existing.add(points)
            return
        if existing is not None:
            msg = f"{metric_name} {dict(dimensions)} already exists as a generated series"
            raise ValueError(msg)
        self._store(series)

    def add_many(
        self,
        namespace: str,
        metric_name: str,
        count: int,
        *,
        start: int,
        end: int,
        step: int = 60,
        dimensions: Callable[[int], Mapping[str, str]] | None = None,
        value: Callable[[int, int], float] = default_value,
        unit: str | None = "Percent",
        account_id: str | None = None,
    ) -> None:
        """``count`` series with one sample every ``step`` s in ``[start, end)``, computed lazily.

        Series ``i`` has dimensions ``dimensions(i)`` (default ``{"Index": "000i"}``) and the
        sample at ``t`` is ``value(i, t)``; ``account_id`` makes them a linked account's.
        """
        make_dims = dimensions or (lambda i: {"Index": f"{i:06d}"})
        for index in range(count):
            series = _GeneratedSeries(
                namespace,
                metric_name,
                make_dims(index),
                unit,
                index=index,
                start=start,
                end=end,
                step=step,
                value=value,
            )
            series.account_id = account_id
            self._store(series)

    def _store(self, series: _Series) -> None:
        account = series.account_id or OWN_ACCOUNT
        if (account, series.key) in self._accounts:
            msg = f"duplicate series {series.metric_name} {dict(series.dimensions)}"
            raise ValueError(msg)
        self._accounts[(account, series.key)] = series
        if series.account_id is None:
            self._series[series.key] = series
        self._order.append(series)

    def expected(
        self,
        start: int,
        end: int,
        period: int,
        statistics: Sequence[str],
        *,
        namespace: str | None = None,
        metric_name: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        account_id: str | None = None,
    ) -> set[Row]:
        """Every datapoint the fake holds for aligned buckets in ``[start, end)``.

        ``account_id`` keeps that account's series only (``OWN_ACCOUNT`` for the fake's own).
        """
        wanted = dimension_key(dimensions) if dimensions is not None else None
        rows: set[Row] = set()
        for series in self._order:
            if (
                (account_id is not None and (series.account_id or OWN_ACCOUNT) != account_id)
                or (namespace is not None and series.namespace != namespace)
                or (metric_name is not None and series.metric_name != metric_name)
                or (wanted is not None and series.dimension_key != wanted)
            ):
                continue
            for timestamp, values in series.buckets(start, end, period):
                for statistic in statistics:
                    rows.add(
                        Row(
                            series.namespace,
                            series.metric_name,
                            series.dimension_key,
                            statistic,
                            timestamp,
                            compute_statistic(statistic, values),
                        )
                    )
        return rows

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        *,
        code: str = "Throttling",
        status: int = 400,
        message: str | None = None,
        times: int | None = 1,
        after: int = 0,
        type_name: str | None = None,
        transport: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``operation`` (None: all) with an error.

        ``code`` is the error code botocore reports (sent in ``x-amzn-query-error``);
        ``type_name`` the JSON ``__type`` (default: the code); ``after`` lets that many
        requests of the operation through first. With ``transport`` ("connection_reset",
        "read_timeout", "connect_timeout") the request fails in transit instead, as botocore
        reports it (no HTTP answer at all).
        """
        if transport is not None and transport not in TRANSPORT_FAULTS:
            msg = f"unknown transport fault {transport!r}; known: {sorted(TRANSPORT_FAULTS)}"
            raise ValueError(msg)
        self._faults[operation].append(
            Fault(
                code=code if transport is None else transport,
                status=status if transport is None else 0,
                message=message or f"{code} (injected by the fake)",
                type_name=type_name,
                times=times,
                after=self._seen[operation] + after,
                transport=transport,
            )
        )

    def force_status(
        self,
        status: str,
        *,
        metric_name: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        statistic: str | None = None,
        message: str = "",
    ) -> None:
        """Answer matching GetMetricData queries with StatusCode ``status`` and no datapoints."""
        self._rules.append(
            QueryRule(
                metric_name,
                frozenset(dimensions.items()) if dimensions is not None else None,
                statistic,
                status=status,
                message=message or f"{status} (injected by the fake)",
            )
        )

    def truncate(
        self,
        after: int,
        *,
        metric_name: str | None = None,
        dimensions: Mapping[str, str] | None = None,
        statistic: str | None = None,
    ) -> None:
        """Cut matching queries after ``after``; ``PartialData`` and no token on the last page."""
        self._rules.append(
            QueryRule(
                metric_name,
                frozenset(dimensions.items()) if dimensions is not None else None,
                statistic,
                truncate_after=after,
            )
        )

    def clear_faults(self) -> None:
        """Forget every canned fault and query rule."""
        with self._lock:
            self._faults.clear()
            self._rules.clear()

    # -- what was asked ------------------------------------------------------------------

    def requests(self, operation: str, *, answered_only: bool = True) -> list[dict[str, Any]]:
        """Request bodies of ``operation`` (by default only those answered 200)."""
        return [
            c.request
            for c in self.calls
            if c.operation == operation and (c.ok or not answered_only)
        ]

    def count(self, operation: str, *, answered_only: bool = True) -> int:
        return len(self.requests(operation, answered_only=answered_only))

    @property
    def billed_metric_requests(self) -> int:
        """Queries summed over answered GetMetricData calls (continuation pages included)."""
        return sum(len(r["MetricDataQueries"]) for r in self.requests("GetMetricData"))

    @property
    def rejected(self) -> list[Recorded]:
        """Requests refused as invalid (not the injected faults)."""
        return [c for c in self.calls if c.error and c.result.get("invalid")]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- wiring --------------------------------------------------------------------------

    def attach(self, client: Any) -> Any:
        """Answer every request of a boto3 CloudWatch client; returns the client."""
        if client.meta.service_model.service_id != "CloudWatch":
            msg = f"not a CloudWatch client: {client.meta.service_model.service_id}"
            raise FakeCloudWatchError(msg)
        client.meta.events.register(SERVICE_EVENT, self.handle, unique_id=f"fake-cw-{id(self)}")
        return client

    def client(self, region: str = "us-east-1", **config: Any) -> Any:
        """A fresh boto3 client with dummy credentials answered by this fake."""
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        client = boto3.client(
            "cloudwatch",
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(**config) if config else None,
        )
        return self.attach(client)

    def handle(self, request: Any, **_: Any) -> AWSResponse:
        """The ``before-send`` handler: parse, answer, record."""
        content_type = _header(request, "Content-Type")
        target = _header(request, "X-Amz-Target")
        if content_type != JSON_CONTENT_TYPE or not target.startswith(TARGET_PREFIX):
            msg = (
                f"the fake speaks CloudWatch's JSON protocol only; got Content-Type "
                f"{content_type!r}, X-Amz-Target {target!r}"
            )
            raise FakeCloudWatchError(msg)
        operation = target[len(TARGET_PREFIX) :]
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        parsed = json.loads(body or "{}")
        with self._lock:
            self._in_flight[operation] += 1
            self.max_in_flight[operation] = max(
                self.max_in_flight[operation], self._in_flight[operation]
            )
        try:
            if delay := self.latency.get(operation):
                time.sleep(delay)
            return self._answer(request, operation, parsed)
        finally:
            with self._lock:
                self._in_flight[operation] -= 1

    def _answer(self, request: Any, operation: str, parsed: dict[str, Any]) -> AWSResponse:
        handlers = {
            "ListMetrics": self._list_metrics,
            "GetMetricData": self._get_metric_data,
            "GetMetricStatistics": self._get_metric_statistics,
        }
        if operation not in handlers:
            msg = f"the fake does not implement {operation}"
            raise FakeCloudWatchError(msg)
        with self._lock:
            recorded = Recorded(operation, parsed)
            self.calls.append(recorded)
            fault = self._take_fault(operation)
            if fault is not None and fault.transport is not None:
                recorded.status, recorded.error = 0, fault.transport
                raise TRANSPORT_FAULTS[fault.transport](endpoint_url=request.url)
            if fault is not None:
                recorded.status, recorded.error = fault.status, fault.code
                return _error_response(
                    request, fault.code, fault.message, fault.status, fault.type_name
                )
            try:
                answer = handlers[operation](parsed, recorded)
            except _ApiError as exc:
                recorded.status, recorded.error = exc.status, exc.code
                recorded.result["invalid"] = True
                return _error_response(request, exc.code, exc.message, exc.status, exc.type_name)
        return _json_response(request, 200, answer)

    def _take_fault(self, operation: str) -> Fault | None:
        seen = self._seen[operation]
        self._seen[operation] += 1
        queue = self._faults.get(operation) or []
        for fault in queue:
            if seen < fault.after:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.remove(fault)
            return fault
        return None

    # -- ListMetrics ---------------------------------------------------------------------

    def _list_metrics(self, request: dict[str, Any], recorded: Recorded) -> dict[str, Any]:
        namespace = request.get("Namespace")
        metric_name = request.get("MetricName")
        filters = request.get("Dimensions") or []
        recently = request.get("RecentlyActive")
        linked = bool(request.get("IncludeLinkedAccounts"))
        if recently not in (None, "PT3H"):
            raise _ApiError(
                "InvalidParameterValue",
                "RecentlyActive must be PT3H",
                type_name="InvalidParameterValueException",
            )
        for item in filters:
            if "Name" not in item:
                raise _ApiError(
                    "InvalidParameterValue",
                    "Dimension filters need a Name",
                    type_name="InvalidParameterValueException",
                )
        matches = [
            s
            for s in self._order
            if (namespace is None or s.namespace == namespace)
            and (metric_name is None or s.metric_name == metric_name)
            and all(_filter_matches(s, item) for item in filters)
            and self._listed(s, recently)
            and (linked or s.account_id in (None, OWN_ACCOUNT))
        ]
        offset = 0
        if token := request.get("NextToken"):
            if not token.startswith("lm-") or not token[3:].isdigit():
                raise _ApiError(
                    "InvalidNextToken", "invalid NextToken", type_name="InvalidNextToken"
                )
            offset = int(token[3:])
        page = matches[offset : offset + LIST_PAGE_SIZE]
        answer: dict[str, Any] = {"Metrics": [s.api_metric() for s in page]}
        if linked:
            answer["OwningAccounts"] = [s.account_id or OWN_ACCOUNT for s in page]
        if offset + LIST_PAGE_SIZE < len(matches):
            answer["NextToken"] = f"lm-{offset + LIST_PAGE_SIZE}"
        recorded.result["metrics"] = len(page)
        return answer

    def _listed(self, series: _Series, recently: str | None) -> bool:
        if self.now is None:
            return True
        age = THREE_HOURS if recently else TWO_WEEKS
        return series.has_data(self.now - age, self.now + 1)

    # -- GetMetricData -------------------------------------------------------------------

    def _get_metric_data(self, request: dict[str, Any], recorded: Recorded) -> dict[str, Any]:
        queries = request.get("MetricDataQueries")
        if not isinstance(queries, list) or not queries:
            raise _ApiError("ValidationError", "MetricDataQueries must not be empty")
        if len(queries) > MAX_QUERIES:
            raise _ApiError(
                "ValidationError",
                f"The collection MetricDataQueries must not have a size greater than "
                f"{MAX_QUERIES}.",
            )
        ids: set[str] = set()
        for number, query in enumerate(queries, start=1):
            query_id = query.get("Id", "")
            if not QUERY_ID.match(query_id):
                raise _ApiError(
                    "ValidationError",
                    f"The value {query_id} for parameter MetricDataQueries.member.{number}.Id "
                    f"is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$.",
                )
            if query_id in ids:
                raise _ApiError(
                    "ValidationError",
                    "The values for parameter id in MetricDataQueries are not unique.",
                )
            ids.add(query_id)
            stat = query.get("MetricStat")
            if stat is None:
                raise _ApiError(
                    "InvalidParameterValue",
                    "the fake only answers MetricStat queries",
                    type_name="InvalidParameterValueException",
                )
            if not period_allowed(stat.get("Period")):
                raise _ApiError(
                    "InvalidParameterValue",
                    f"The parameter MetricDataQueries.member.{number}.MetricStat.Period must "
                    f"be a multiple of 60 or equal to 1, 5, 10, 20, or 30.",
                    type_name="InvalidParameterValueException",
                )
            if not statistic_supported(stat.get("Stat", "")):
                raise _ApiError(
                    "InvalidParameterValue",
                    f"The fake does not support statistic {stat.get('Stat')!r}",
                    type_name="InvalidParameterValueException",
                )
        start, end = _time(request["StartTime"]), _time(request["EndTime"])
        if start >= end:
            raise _ApiError(
                "ValidationError",
                "The parameter StartTime must be less than the parameter EndTime.",
            )
        scan = request.get("ScanBy", "TimestampDescending")
        max_points = request.get("MaxDatapoints")
        budget = min(self.page_points, max_points) if max_points else self.page_points
        signature = json.dumps(
            [queries, request["StartTime"], request["EndTime"], scan, max_points],
            sort_keys=True,
        )
        token = request.get("NextToken")
        if token:
            cursor = self._cursors.get(token)
            if cursor is None or cursor.signature != signature:
                raise _ApiError(
                    "InvalidNextToken",
                    "NextToken does not belong to this request",
                    type_name="InvalidNextToken",
                )
        else:
            cursor = self._first_page(queries, start, end, scan, signature)

        taken_by_query: list[list[tuple[int, float]]] = []
        remaining = budget
        for index in range(len(queries)):
            offset = cursor.offsets[index]
            taken = cursor.points[index][offset : offset + remaining]
            cursor.offsets[index] = offset + len(taken)
            remaining -= len(taken)
            taken_by_query.append(taken)
        more = any(cursor.offsets[i] < len(cursor.points[i]) for i in range(len(queries)))
        results = []
        statuses: Counter[str] = Counter()
        for index, query in enumerate(queries):
            taken = taken_by_query[index]
            result: dict[str, Any] = {
                "Id": query["Id"],
                "Label": query.get("Label") or query["MetricStat"]["Metric"]["MetricName"],
                "Timestamps": [t for t, _ in taken],
                "Values": [v for _, v in taken],
            }
            forced = self._forced_status(query)
            if forced is not None:
                result["StatusCode"] = forced.status
                result["Messages"] = [{"Code": forced.status, "Value": forced.message}]
            elif cursor.offsets[index] < len(cursor.points[index]) or (
                not more and cursor.truncated[index]
            ):
                result["StatusCode"] = "PartialData"
            else:
                result["StatusCode"] = "Complete"
            statuses[result["StatusCode"]] += 1
            results.append(result)
        points_on_page = budget - remaining
        answer: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if more:
            next_token = f"gmd-{next(self._tokens)}-{uuid.uuid4().hex}"
            self._cursors[next_token] = cursor
            answer["NextToken"] = next_token
        recorded.result.update(
            statuses=dict(statuses), points=points_on_page, next_token=bool(more)
        )
        return answer

    def _first_page(
        self,
        queries: list[dict[str, Any]],
        start: int,
        end: int,
        scan: str,
        signature: str,
    ) -> _Cursor:
        points: list[list[tuple[int, float]]] = []
        truncated: list[bool] = []
        for query in queries:
            stat = query["MetricStat"]
            metric = stat["Metric"]
            period = stat["Period"]
            key: SeriesKey = (
                metric.get("Namespace", ""),
                metric.get("MetricName", ""),
                frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions") or ()),
            )
            series = self._accounts.get((query.get("AccountId") or OWN_ACCOUNT, key))
            rows: list[tuple[int, float]] = []
            unit = stat.get("Unit")
            if series is not None and (unit is None or unit == series.unit):
                rounded = _round_start(start, period, self.now)
                rows = [
                    (t, compute_statistic(stat["Stat"], values))
                    for t, values in series.buckets(rounded, end, period)
                ]
            if self._forced_status(query) is not None:
                rows = []
            cut = False
            for rule in self._rules:
                if rule.truncate_after is not None and rule.matches(key, stat["Stat"]):
                    rows = [r for r in rows if r[0] <= rule.truncate_after]
                    cut = True
            if scan != "TimestampAscending":
                rows.reverse()
            points.append(rows)
            truncated.append(cut)
        return _Cursor(signature, points, [0] * len(queries), truncated)

    def _forced_status(self, query: dict[str, Any]) -> QueryRule | None:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        key: SeriesKey = (
            metric.get("Namespace", ""),
            metric.get("MetricName", ""),
            frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions") or ()),
        )
        for rule in self._rules:
            if rule.status is not None and rule.matches(key, stat["Stat"]):
                return rule
        return None

    # -- GetMetricStatistics -------------------------------------------------------------

    def _get_metric_statistics(self, request: dict[str, Any], recorded: Recorded) -> dict[str, Any]:
        period = request.get("Period")
        if not period_allowed(period):
            raise _ApiError(
                "InvalidParameterValue",
                "The parameter Period must be a multiple of 60 or equal to 1, 5, 10, 20, or 30.",
                type_name="InvalidParameterValueException",
            )
        basic = request.get("Statistics") or []
        extended = request.get("ExtendedStatistics") or []
        if bool(basic) == bool(extended):
            raise _ApiError(
                "InvalidParameterCombination",
                "Must specify either Statistics or ExtendedStatistics, but not both.",
                type_name="InvalidParameterCombinationException",
            )
        for name in [*basic, *extended]:
            if not statistic_supported(name):
                raise _ApiError(
                    "InvalidParameterValue",
                    f"unknown statistic {name!r}",
                    type_name="InvalidParameterValueException",
                )
        start, end = _time(request["StartTime"]), _time(request["EndTime"])
        if start >= end:
            raise _ApiError(
                "InvalidParameterValue",
                "The parameter StartTime must be less than the parameter EndTime.",
                type_name="InvalidParameterValueException",
            )
        if math.ceil((end - start) / period) > MAX_STATISTICS_POINTS:
            raise _ApiError(
                "InvalidParameterCombination",
                f"You have requested up to {math.ceil((end - start) / period)} datapoints, "
                f"which exceeds the limit of {MAX_STATISTICS_POINTS}.",
                type_name="InvalidParameterCombinationException",
            )
        key: SeriesKey = (
            request.get("Namespace", ""),
            request.get("MetricName", ""),
            frozenset((d["Name"], d["Value"]) for d in request.get("Dimensions") or ()),
        )
        series = self._series.get(key)
        datapoints = []
        unit = request.get("Unit")
        if series is not None and (unit is None or unit == series.unit):
            rounded = _round_start(start, period, self.now)
            for timestamp, values in series.buckets(rounded, end, period):
                point: dict[str, Any] = {"Timestamp": timestamp}
                for name in basic:
                    point[name] = compute_statistic(name, values)
                if extended:
                    point["ExtendedStatistics"] = {
                        name: compute_statistic(name, values) for name in extended
                    }
                if series.unit:
                    point["Unit"] = series.unit
                datapoints.append(point)
        recorded.result["datapoints"] = len(datapoints)
        return {"Label": request.get("MetricName", ""), "Datapoints": datapoints}


def _filter_matches(series: _Series, item: Mapping[str, str]) -> bool:
    """ListMetrics' dimension filter: the series has that name (with that value if given)."""
    for name, value in series.dimensions:
        if name == item["Name"] and ("Value" not in item or item["Value"] == value):
            return True
    return False


def _round_start(start: int, period: int, now: int | None) -> int:
    """CloudWatch rounds StartTime down: to the period under a minute, else by age."""
    if period < 60:
        return start - start % period
    step = 60
    if now is not None:
        age = now - start
        step = 3600 if age > 63 * 86400 else 300 if age > 15 * 86400 else 60
    return start - start % step


def _time(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    return epoch(value)


def _header(request: Any, name: str) -> str:
    value = request.headers.get(name, b"")
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _json_response(
    request: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> AWSResponse:
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    all_headers = {
        "x-amzn-RequestId": str(uuid.uuid4()),
        "Content-Type": JSON_CONTENT_TYPE,
        "Content-Length": str(len(data)),
        **(headers or {}),
    }
    return AWSResponse(request.url, status, all_headers, _Raw(data))


def _error_response(
    request: Any, code: str, message: str, status: int, type_name: str | None
) -> AWSResponse:
    sender = "Sender" if status < 500 else "Receiver"
    return _json_response(
        request,
        status,
        {"__type": ERROR_NAMESPACE + (type_name or code), "message": message},
        {"x-amzn-query-error": f"{code};{sender}"},
    )


# -- the tap side -----------------------------------------------------------------------------

FAKE_CONFIG: dict[str, Any] = {
    "aws_access_key_id": "AKIDFAKEFAKEFAKE",
    "aws_secret_access_key": "fake-secret-not-real",
    "region": "us-east-1",
    "cloudwatch_metrics_namespace": "Fake/App",
    "period": 300,
    "statistics": ["Average"],
}


@contextlib.contextmanager
def wall_clock(now: float | None) -> Iterator[None]:
    """Make ``tap_cloudwatch_metrics.tap._wall_clock`` return ``now`` (None: leave it)."""
    import tap_cloudwatch_metrics.tap as tap_module  # noqa: PLC0415

    if now is None:
        yield
        return
    saved = tap_module._wall_clock
    tap_module._wall_clock = lambda: float(now)
    try:
        yield
    finally:
        tap_module._wall_clock = saved


def make_fake_tap(
    config_overrides: Mapping[str, Any] | None,
    fake: FakeCloudWatch | Mapping[str, FakeCloudWatch],
    state: dict[str, Any] | None = None,
    *,
    now: float | None = None,
    tap_class: Any = None,
) -> Any:
    """A tap (of ``tap_class``, by default the tap's) whose CloudWatch client is ``fake``.

    The client is the tap's own (``aws.make_client`` on the tap's session: retries, timestamp
    parser, user agent), with the fake registered on it; ``now`` fixes the tap's run start.
    A config value of None removes that key; ``state`` is deep-copied.
    """
    from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics  # noqa: PLC0415

    config = {**FAKE_CONFIG, **(config_overrides or {})}
    config = {k: v for k, v in config.items() if v is not None}
    # The SDK keeps (and then mutates) the lists of a state dict it is given: pass a copy, as
    # a state file would be, so the caller's STATE values stay what was written.
    state = copy.deepcopy(state) if state is not None else None
    with wall_clock(now):
        tap = (tap_class or TapCloudWatchMetrics)(
            config=config, state=state, parse_env_config=False
        )
    # The tap's own clients (one per region), answered by the fake (or that region's fake).
    fakes = fake if isinstance(fake, Mapping) else {region: fake for region in tap.regions}
    for region, one in fakes.items():
        tap._clients[region] = one.attach(tap._new_client(region))
    return tap


def install(monkeypatch: Any, fake: FakeCloudWatch) -> None:
    """Route every client the tap makes to ``fake`` and forbid real HTTP (for CLI-style runs)."""
    import tap_cloudwatch_metrics.tap as tap_module  # noqa: PLC0415

    real = tap_module.make_client

    def make_client(*args: Any, **kwargs: Any) -> Any:
        return fake.attach(real(*args, **kwargs))

    monkeypatch.setattr(tap_module, "make_client", make_client)
    no_network(monkeypatch)


def no_network(monkeypatch: Any) -> None:
    """Any real HTTP request from botocore fails the test."""
    import botocore.httpsession  # noqa: PLC0415

    def refuse(self: Any, request: Any) -> Any:
        msg = f"real network request attempted: {request.method} {request.url}"
        raise FakeCloudWatchError(msg)

    monkeypatch.setattr(botocore.httpsession.URLLib3Session, "send", refuse)


def fast_retries(monkeypatch: Any, attempts: int | None = None) -> None:
    """No real waiting in botocore's retries and adaptive rate limiter (logic unchanged).

    ``attempts`` sets the default of the ``max_attempts`` setting (read when the settings are
    parsed, so call this before :func:`make_fake_tap`).
    """
    from botocore.retries import bucket, standard  # noqa: PLC0415

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)
    monkeypatch.setattr(bucket.TokenBucket, "_sleep_amount", lambda self, amount: 0)
    if attempts is not None:
        monkeypatch.setattr("tap_cloudwatch_metrics.settings.DEFAULT_MAX_ATTEMPTS", attempts)


# -- running a sync and reading its messages --------------------------------------------------


@dataclass
class SyncOutput:
    """The Singer messages of one run, in order; ``error`` is what the sync raised, if any."""

    messages: list[dict[str, Any]]
    tap: Any
    error: BaseException | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "SCHEMA"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def rows(self) -> list[Row]:
        return [row_of(r) for r in self.records]

    def keys(self) -> list[tuple[str, str, int, int]]:
        """Primary keys (series_id, statistic, period, epoch timestamp) in emission order."""
        return [
            (r["series_id"], r["statistic"], r["period"], epoch(r["timestamp"]))
            for r in self.records
        ]


def capture_sync(tap: Any, decode: Callable[[bytes], Any] = json.loads) -> SyncOutput:
    """Run ``tap.sync_all()`` with stdout captured; a failure is kept in ``error``, with the
    messages written before it.

    Captured as bytes through a text wrapper, so both the SDK's text writes and our writer's
    ``sys.stdout.buffer`` writes land. Messages are split at ``\n`` only, as Singer (and a
    target reading stdin line by line) does: ``str.splitlines`` would also split inside a JSON
    string holding U+0085 or U+2028, which JSON leaves raw.
    """
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    error: BaseException | None = None
    with contextlib.redirect_stdout(out):
        try:
            tap.sync_all()
        except Exception as exc:  # the caller decides whether a failure was expected
            error = exc
    out.flush()
    lines = raw.getvalue().split(b"\n")
    return SyncOutput([decode(line) for line in lines if line.strip()], tap, error)


def run_sync(tap: Any, *, expect_error: bool = False) -> SyncOutput:
    """:func:`capture_sync` that raises the run's exception, or with ``expect_error`` insists
    that there is one."""
    output = capture_sync(tap)
    if output.error is not None and not expect_error:
        raise output.error
    if expect_error and output.error is None:
        msg = "the sync was expected to fail and did not"
        raise AssertionError(msg)
    return output


def bookmarks(state: Mapping[str, Any], stream: str = "metrics") -> dict[str, int]:
    """series_id -> bookmark (epoch seconds) of a STATE value."""
    partitions = state.get("bookmarks", {}).get(stream, {}).get("partitions", [])
    return {
        p["context"]["series_id"]: epoch(p["replication_key_value"])
        for p in partitions
        if p.get("replication_key_value")
    }


def state_violations(
    messages: Sequence[Mapping[str, Any]],
    expected: Iterable[Row],
    initial_state: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every way a STATE claims more than the RECORDs written before it.

    A series' bookmark ``T`` that moved from its initial value must (1) belong to a series that
    had records written before that STATE, (2) equal the newest timestamp written for it, and
    (3) be covered: every expected row of that series with initial < timestamp <= T was
    written before the STATE (so a run resumed from it loses nothing).
    """
    by_series: dict[tuple[str, str, DimensionKey], list[Row]] = defaultdict(list)
    for row in expected:
        by_series[(row.namespace, row.metric_name, row.dimensions)].append(row)
    initial = bookmarks(initial_state or {})
    identity: dict[str, tuple[str, str, DimensionKey]] = {}
    written: dict[str, set[tuple[str, int]]] = defaultdict(set)
    newest: dict[str, int] = {}
    problems: list[str] = []
    for number, message in enumerate(messages):
        if message["type"] == "RECORD":
            record = message["record"]
            series_id = record["series_id"]
            row = row_of(record)
            identity[series_id] = (row.namespace, row.metric_name, row.dimensions)
            written[series_id].add((row.statistic, row.timestamp))
            newest[series_id] = max(newest.get(series_id, row.timestamp), row.timestamp)
        elif message["type"] == "STATE":
            for series_id, mark in bookmarks(message["value"]).items():
                before = initial.get(series_id)
                if mark == before:
                    continue
                where = f"STATE #{number} series {series_id} bookmark {mark}"
                if series_id not in identity:
                    problems.append(f"{where}: no record of the series written before it")
                    continue
                if newest[series_id] != mark:
                    problems.append(f"{where}: newest record written is {newest[series_id]}")
                missing = sorted(
                    (row.statistic, row.timestamp)
                    for row in by_series.get(identity[series_id], ())
                    if (before is None or row.timestamp > before)
                    and row.timestamp <= mark
                    and (row.statistic, row.timestamp) not in written[series_id]
                )
                if missing:
                    problems.append(f"{where}: rows not written before it: {missing[:5]}")
    return problems
