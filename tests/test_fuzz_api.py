"""Fuzzed CloudWatch answers, end to end: nothing crashes, nothing wrong is emitted, none lost.

Two kinds of input come from CloudWatch. Series (ListMetrics): dimension names and values are
free text (unicode, commas, ``=``, quotes, backslashes, up to 30 dimensions, names up to 255
characters and values up to 1,024), a series may be listed twice and in any dimension order, a
namespace may be empty and a series may have no datapoints. Datapoints (GetMetricData): a value
may be NaN, an infinity, a huge number or junk, a timestamp an ISO string, a field or a whole
result missing, an id unknown. Each example runs a whole sync through the tap's own client
against ``tests.fakes.FakeCloudWatch`` and checks every RECORD and STATE it wrote.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tap_cloudwatch_metrics.fetcher import CloudWatchDataError
from tests.conftest import NOW as NOW_DT
from tests.fakes import (
    FAKE_CONFIG,
    FakeCloudWatch,
    Row,
    SyncOutput,
    bookmarks,
    capture_sync,
    dimension_key,
    make_fake_tap,
    row_of,
    state_violations,
)

UTC = dt.timezone.utc
NOW = int(NOW_DT.timestamp())  # 2026-01-15T12:00:00Z, on a period boundary
PERIOD = 300
START = NOW - 3600
NS = FAKE_CONFIG["cloudwatch_metrics_namespace"]
OTHER_NS = "Other/NS"
LIST_EVENT = "before-parse.cloudwatch.ListMetrics"
# Each example is a whole sync (~0.1-0.3 s): no deadline, and no "explain" phase, which reruns a
# failing example hundreds of times (90 s) to say which parts of it matter.
FUZZ = settings(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
DATA_EVENT = "before-parse.cloudwatch.GetMetricData"


pytestmark = pytest.mark.usefixtures("offline")


def config(statistics: list[str], **extra: Any) -> dict[str, Any]:
    """One hour up to NOW, every closed period due."""
    return {
        "start_date": dt.datetime.fromtimestamp(START, UTC).isoformat(),
        "delay_seconds": 0,
        "period": PERIOD,
        "statistics": statistics,
        **extra,
    }


def check_primary_keys_unique(out: SyncOutput) -> None:
    keys = out.keys()
    duplicated = [key for key, count in Counter(keys).items() if count > 1]
    assert not duplicated, f"primary keys written twice: {duplicated[:3]}"


# == (a) series: odd dimensions, duplicates, empty namespaces ==================================

# Characters that break naive encodings of a dimension set (``Name=Value,...``, CSV, JSON,
# SQL, shells) and text outside the Basic Multilingual Plane; surrogates cannot be UTF-8.
TRICKY = [",", "=", '"', "'", "\\", " ", "{", "}", ":", "[", "]", "/", "\n", "\t", "\x00", "%"]
_alphabet = st.one_of(
    st.sampled_from([*TRICKY, "é", "日", "🙂", "\u2028", "\u200b", "ß"]),
    st.characters(blacklist_categories=("Cs",)),
)


@st.composite
def _text(draw: st.DrawFn, max_size: int) -> str:
    """Non-empty text, sometimes stretched to ``max_size`` (CloudWatch's limit for the field).

    Long values repeat a short drawn text: drawing 1,024 characters one by one for 30
    dimensions would exceed hypothesis's buffer and tell nothing more.
    """
    base = draw(st.text(_alphabet, min_size=1, max_size=8))
    length = draw(st.sampled_from([len(base), len(base), max_size, draw(st.integers(1, max_size))]))
    return (base * (length // len(base) + 1))[:length]


@st.composite
def _dimensions(draw: st.DrawFn) -> dict[str, str]:
    count = draw(st.sampled_from([0, 1, 2, 3, 30, draw(st.integers(0, 30))]))
    names = draw(st.lists(_text(255), min_size=count, max_size=count, unique=True))
    return {name: draw(_text(1024)) for name in names}


_points = st.dictionaries(
    # Samples from 15 minutes before the window to 15 after, some off the minute.
    st.integers(-75, 14).flatmap(lambda m: st.sampled_from([NOW + m * 60, NOW + m * 60 + 7])),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-1000, 1000), max_size=3),
    max_size=8,
)


@dataclass(frozen=True)
class SeriesSpec:
    """A series the fake holds (``namespace`` OTHER_NS: it must never be emitted)."""

    namespace: str
    metric_name: str
    dimensions: dict[str, str]
    points: dict[int, list[float]]

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.namespace, self.metric_name, dimension_key(self.dimensions))


def ambiguous_twins(dimensions: dict[str, str]) -> list[dict[str, str]]:
    """Other dimension sets that read the same as ``dimensions`` once written ``N=V,N=V``.

    ``{a: b, c: d}`` and ``{a: "b,c=d"}``; ``{a: bc}`` and ``{"a=b": c}``: distinct series
    that any key built by joining names and values would merge. Twins past CloudWatch's
    lengths (255 for a name, 1,024 for a value) are left out.
    """
    items = sorted(dimensions.items())
    twins = []
    if len(items) >= 2:
        (first, value), (second, other) = items[0], items[1]
        twins.append({first: f"{value},{second}={other}", **dict(items[2:])})
    if len(items) == 1 and len(items[0][1]) >= 2:
        name, value = items[0]
        twins.append({f"{name}={value[0]}": value[1:]})
    return [
        twin for twin in twins if all(len(n) <= 255 and len(v) <= 1024 for n, v in twin.items())
    ]


@st.composite
def _series_list(draw: st.DrawFn) -> list[SeriesSpec]:
    """0 to 7 series; names and dimension sets are often shared, so they differ by one part.

    Sometimes a dimension set comes with its ambiguous twins (same metric name), the
    collisions a naive series key would make.
    """
    metric_names = draw(st.lists(_text(255), min_size=1, max_size=2, unique=True))
    dimension_sets = draw(st.lists(_dimensions(), min_size=1, max_size=3))
    specs: list[SeriesSpec] = []

    def add(spec: SeriesSpec) -> None:
        if spec.key not in {s.key for s in specs}:
            specs.append(spec)

    for _ in range(draw(st.integers(0, 4))):
        add(
            SeriesSpec(
                draw(st.sampled_from([NS, NS, NS, OTHER_NS])),
                draw(st.sampled_from(metric_names)),
                draw(st.sampled_from(dimension_sets)),
                draw(_points),
            )
        )
    if draw(st.booleans()):
        base = draw(st.sampled_from(dimension_sets))
        metric_name = draw(st.sampled_from(metric_names))
        for dimensions in [base, *ambiguous_twins(base)]:
            add(SeriesSpec(NS, metric_name, dimensions, draw(_points)))
    return specs


# What ListMetrics may do to its own answer: list a series again (dimensions in another
# order), list a series of another namespace, leave out an empty ``Dimensions`` member.
LIST_OPS = ("repeat-reversed", "repeat-same", "repeat-at-end", "foreign", "no-empty-dimensions")
_list_ops = st.lists(st.tuples(st.sampled_from(LIST_OPS), st.integers(0, 10)), max_size=4)


def doctor_list_metrics(ops: list[tuple[str, int]], foreign: list[dict[str, Any]]) -> Callable:
    """A ``before-parse`` handler applying ``ops`` to every ListMetrics answer."""

    def handler(response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict.get("status_code") != 200:
            return
        document = json.loads(response_dict["body"])
        metrics = document.get("Metrics") or []
        for op, index in ops:
            if op == "foreign" and foreign:
                metrics.insert(index % (len(metrics) + 1), copy.deepcopy(foreign[0]))
                continue
            if not metrics:
                continue
            entry = metrics[index % len(metrics)]
            if op == "no-empty-dimensions":
                if not entry.get("Dimensions"):
                    entry.pop("Dimensions", None)
                continue
            twin = copy.deepcopy(entry)
            if op == "repeat-reversed":
                twin["Dimensions"] = list(reversed(twin.get("Dimensions") or []))
                metrics.insert(index % len(metrics), twin)
            elif op == "repeat-same":
                metrics.insert(index % len(metrics) + 1, twin)
            else:
                metrics.append(twin)
        document["Metrics"] = metrics
        response_dict["body"] = json.dumps(document).encode()

    return handler


@settings(FUZZ, max_examples=25)
@given(
    specs=_series_list(),
    list_ops=_list_ops,
    statistics=st.sampled_from([["Average"], ["Average", "Maximum"], ["SampleCount", "p99"]]),
)
def test_any_series_comes_out_whole_once_and_under_its_own_dimensions(
    specs: list[SeriesSpec], list_ops: list[tuple[str, int]], statistics: list[str]
) -> None:
    fake = FakeCloudWatch()
    for spec in specs:
        fake.add_series(spec.namespace, spec.metric_name, spec.dimensions, spec.points)
    foreign = [
        {
            "Namespace": s.namespace,
            "MetricName": s.metric_name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in s.dimensions.items()],
        }
        for s in specs
        if s.namespace == OTHER_NS
    ] or [{"Namespace": OTHER_NS, "MetricName": "Ghost", "Dimensions": []}]
    tap = make_fake_tap(config(statistics), fake, now=NOW)
    tap.client.meta.events.register_first(LIST_EVENT, doctor_list_metrics(list_ops, foreign))

    out = capture_sync(tap)

    assert out.error is None, repr(out.error)
    expected = fake.expected(START, NOW, PERIOD, statistics, namespace=NS)
    rows = out.rows()
    assert Counter(rows) == Counter(expected), "rows lost, added or written twice"
    check_primary_keys_unique(out)
    assert state_violations(out.messages, expected) == []

    dimensions_of = {(s.metric_name, dimension_key(s.dimensions)): s.dimensions for s in specs}
    ids_of: dict[tuple[str, tuple], set[str]] = defaultdict(set)
    series_of: dict[str, set[tuple[str, tuple]]] = defaultdict(set)
    for record in out.records:
        assert record["namespace"] == NS
        identity = (record["metric_name"], dimension_key(record["dimensions"]))
        assert record["dimensions"] == dimensions_of[identity]
        assert json.loads(record["dimensions_key"]) == record["dimensions"]
        assert record["unit"] == "Percent"  # the fake's unit, looked up with these dimensions
        assert type(record["value"]) is float
        ids_of[identity].add(record["series_id"])
        series_of[record["series_id"]].add(identity)
    assert all(len(ids) == 1 for ids in ids_of.values()), "one series under several ids"
    assert all(len(ids) == 1 for ids in series_of.values()), "several series under one id"

    partitions = out.final_state["bookmarks"]["metrics"].get("partitions", [])
    listed_ids = [p["context"]["series_id"] for p in partitions]
    assert len(listed_ids) == len(set(listed_ids)), "a series listed twice has two bookmarks"
    newest: dict[str, int] = {}
    for row, record in zip(rows, out.records, strict=True):
        newest[record["series_id"]] = max(newest.get(record["series_id"], 0), row.timestamp)
    assert bookmarks(out.final_state) == newest


def test_series_a_joined_key_would_merge_stay_apart() -> None:
    """Commas and ``=`` inside names and values: each series keeps its own id and rows."""
    twins = [
        {"a": "b", "c": "d"},
        {"a": "b,c=d"},
        {"a=b": "c,c=d"},
        {"a": "b=c,c=d"},
        {"a": 'b", "c": "d'},
        {"a": "b\\", "c": "d"},
    ]
    fake = FakeCloudWatch()
    for number, dimensions in enumerate(twins):
        fake.add_series(NS, "CPU", dimensions, {NOW - 600 + 7: [float(number)]})
    out = capture_sync(make_fake_tap(config(["Average"]), fake, now=NOW))
    assert out.error is None, repr(out.error)
    assert Counter(out.rows()) == Counter(fake.expected(START, NOW, PERIOD, ["Average"]))
    ids = {record["series_id"]: record["dimensions"] for record in out.records}
    assert sorted(map(dimension_key, ids.values())) == sorted(map(dimension_key, twins))
    assert len({record["dimensions_key"] for record in out.records}) == len(twins)


def test_an_empty_namespace_syncs_nothing_and_completes() -> None:
    fake = FakeCloudWatch()
    fake.add_series(OTHER_NS, "CPU", {"Host": "a"}, {NOW - 600: [1.0]})
    out = capture_sync(make_fake_tap(config(["Average"]), fake, now=NOW))
    assert out.error is None, repr(out.error)
    assert out.records == []
    assert bookmarks(out.final_state) == {}
    assert fake.count("ListMetrics") == 1
    assert fake.count("GetMetricData") == 0


# == (b) GetMetricData answers doctored at before-parse ========================================

# Three series x two statistics: six queries, one call, one page. "Disk" has no datapoints.
DATA_SERIES: list[tuple[str, dict[str, str], dict[int, list[float]]]] = [
    ("CPU", {"Host": "a"}, {START + i * PERIOD + 30: [1.0 + i, 2.5 * i] for i in range(12)}),
    (
        "CPU",
        {"Host": 'b,="é\\', "Zone": "z=1,2"},
        {START + i * PERIOD + 90: [0.25 * i, -3.0, 4.0] for i in range(2, 10)},
    ),
    ("Disk", {}, {}),
]
DATA_STATISTICS = ["Average", "Maximum"]


class Raw:
    """A JSON token json.dumps cannot write (``1e400``): a placeholder swapped in afterwards."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.placeholder = f"@@raw-{id(self)}@@"


# (name, what goes on the wire, what the value means: the float a RECORD must carry, or None
# for "no row": NaN and infinities are dropped by design, junk is skipped with a warning).
VALUE_SUBSTITUTES: list[tuple[str, Any, float | None]] = [
    ("bare NaN", math.nan, None),
    ("bare Infinity", math.inf, None),
    ("bare -Infinity", -math.inf, None),
    ('"NaN"', "NaN", None),
    ('"Infinity"', "Infinity", None),
    ('"-Infinity"', "-Infinity", None),
    ("1e308", 1e308, 1e308),
    ("-1e308", -1e308, -1e308),
    ("5e-324", 5e-324, 5e-324),
    ("-0.0", -0.0, -0.0),
    ("42.5", 42.5, 42.5),
    ("int 7", 7, 7.0),
    ("int 10**300", 10**300, float(10**300)),
    ("int 2**64+1", 2**64 + 1, float(2**64 + 1)),
    ("int 10**400", 10**400, None),
    ("literal 1e400", Raw("1e400"), None),
    ("literal -1e400", Raw("-1e400"), None),
    ("literal 1e-400", Raw("1e-400"), 0.0),
    ('"abc"', "abc", None),
    ('""', "", None),
    ("true", True, None),
    ("null", None, None),
    ("[1.0]", [1.0], None),
    ('{"v": 1}', {"v": 1}, None),
]


def _iso(timestamp: int, offset_minutes: int = 0) -> str:
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    return dt.datetime.fromtimestamp(timestamp, zone).isoformat()


# (name, wire value from the true epoch, whether it still means that epoch)
TIMESTAMP_SUBSTITUTES: list[tuple[str, Callable[[int], Any], bool]] = [
    ("ISO Z", lambda t: _iso(t).replace("+00:00", "Z"), True),
    ("ISO +00:00", _iso, True),
    ("ISO +05:30", lambda t: _iso(t, 330), True),
    ("ISO -08:00", lambda t: _iso(t, -480), True),
    ("ISO millis", lambda t: _iso(t).replace("+00:00", ".000Z"), True),
    ("float epoch", float, True),
    ('"yesterday"', lambda t: "yesterday", False),
    ('""', lambda t: "", False),
    ("null", lambda t: None, False),
    ("[t]", lambda t: [t], False),
    ('{"t": t}', lambda t: {"t": t}, False),
]

READABLE_TIMESTAMP_SUBSTITUTES = [entry for entry in TIMESTAMP_SUBSTITUTES if entry[2]]

# Operations on one result (or the whole answer) that keep every query answered.
ITEM_OPS = [
    "del Values",
    "del Timestamps",
    "del Values and Timestamps",
    "Values null",
    "Timestamps null",
    "Values and Timestamps null",
    "drop last value",
    "drop last timestamp",
    "del StatusCode",
    "StatusCode null",
    "StatusCode Complete",
    "StatusCode PartialData",
    "StatusCode InternalError",
    "StatusCode Forbidden",
    "StatusCode Unheard-of",
    "del Label",
    "repeat result",
    "add Messages",
    "answer Messages",
    "NextToken null",
]
# Operations that leave a query without any result in the answer.
UNANSWER_OPS = [
    "remove result",
    "del Id",
    "Id null",
    'Id ""',
    "Id unknown",
    "Id upper-case",
    "empty MetricDataResults",
    "del MetricDataResults",
]


@dataclass
class Meaning:
    """What one result's lists mean, entry by entry (None: that entry means no row).

    Kept per list, so that an operation dropping one value or one whole list leaves the
    other list's meaning where it was, as the wire does.
    """

    timestamps: list[int | None]
    values: list[float | None]


@dataclass
class Answer:
    """The GetMetricData answer as served after doctoring, with what each datapoint means."""

    queries: dict[str, tuple[str, tuple[tuple[str, str], ...], str]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    meanings: list[Meaning] = field(default_factory=list)
    served: bool = False
    applied: list[str] = field(default_factory=list)


def _apply(
    document: dict[str, Any], meanings: list[Meaning], op: tuple[str, int, int, int]
) -> str | None:
    """One doctoring operation on the decoded answer, keeping ``meanings`` in step.

    Returns what was done (a substitution's label), or None when the operation found nothing
    to act on (a value to replace in a result that has none).
    """
    name, item_index, point_index, choice = op
    if name == "empty MetricDataResults":
        document["MetricDataResults"] = []
        meanings.clear()
        return name
    if name == "del MetricDataResults":
        document.pop("MetricDataResults", None)
        meanings.clear()
        return name
    if name == "answer Messages":
        document["Messages"] = [{"Code": "Odd", "Value": "a message, = and \u00e9"}]
        return name
    if name == "NextToken null":
        document["NextToken"] = None
        return name
    items = document.get("MetricDataResults") or []
    if not items:
        return None
    index = item_index % len(items)
    item, meaning = items[index], meanings[index]
    values, timestamps = item.get("Values"), item.get("Timestamps")
    if name == "value":
        if not values:
            return None
        at = point_index % len(values)
        label, wire, means = VALUE_SUBSTITUTES[choice % len(VALUE_SUBSTITUTES)]
        values[at] = wire
        meaning.values[at] = means
        return label
    if name in ("timestamp", "readable timestamp"):
        if not timestamps:
            return None
        at = point_index % len(timestamps)
        true_epoch = meaning.timestamps[at]
        if true_epoch is None:
            return None  # already junk
        table = TIMESTAMP_SUBSTITUTES if name == "timestamp" else READABLE_TIMESTAMP_SUBSTITUTES
        label, make, keeps = table[choice % len(table)]
        timestamps[at] = make(true_epoch)
        if not keeps:
            meaning.timestamps[at] = None
        return label
    if name == "remove result":
        del items[index]
        del meanings[index]
    elif name == "repeat result":
        items.append(copy.deepcopy(item))
        meanings.append(copy.deepcopy(meaning))
    elif name.startswith("del ") or name.endswith(" null"):
        keys = name[4:] if name.startswith("del ") else name[: -len(" null")]
        for key in keys.split(" and "):
            if name.startswith("del "):
                item.pop(key, None)
            else:
                item[key] = None
            if key == "Values":
                meaning.values = []
            elif key == "Timestamps":
                meaning.timestamps = []
    elif name == "drop last value" and values:
        values.pop()
        meaning.values.pop()
    elif name == "drop last timestamp" and timestamps:
        timestamps.pop()
        meaning.timestamps.pop()
    elif name.startswith("StatusCode "):
        item["StatusCode"] = name.split(" ", 1)[1]
    elif name == 'Id ""':
        item["Id"] = ""
    elif name == "Id unknown":
        item["Id"] = "unknown_query"
    elif name == "Id upper-case" and isinstance(item.get("Id"), str):
        item["Id"] = item["Id"].upper()
    elif name == "add Messages":
        item["Messages"] = [{"Code": "Odd", "Value": "x"}]
    return name


def _encode(document: dict[str, Any]) -> bytes:
    """JSON with NaN/Infinity tokens as json.dumps writes them, and Raw tokens swapped in."""
    raws: list[Raw] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return value.placeholder
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    text = json.dumps(swap(document))
    for raw in raws:
        text = text.replace(json.dumps(raw.placeholder), raw.text)
    return text.encode()


def doctor_get_metric_data(
    fake: FakeCloudWatch, ops: list[tuple[str, int, int, int]], fallback: bool, answer: Answer
) -> Callable:
    """A ``before-parse`` handler: apply ``ops`` to the answer and record what it then means.

    With ``fallback`` the body also gets an unknown member holding a bare NaN: the tap's fast
    decoder refuses such a body and botocore's parser reads it instead, so both paths are fed.
    """

    def handler(response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict.get("status_code") != 200:
            return
        assert not answer.served, "the tests expect one GetMetricData page"
        request = [c for c in fake.calls if c.operation == "GetMetricData"][-1].request
        for query in request["MetricDataQueries"]:
            stat = query["MetricStat"]
            answer.queries[query["Id"]] = (
                stat["Metric"]["MetricName"],
                dimension_key((d["Name"], d["Value"]) for d in stat["Metric"]["Dimensions"]),
                stat["Stat"],
            )
        document = json.loads(response_dict["body"])
        meanings = [
            Meaning(list(item["Timestamps"]), list(item["Values"]))
            for item in document["MetricDataResults"]
        ]
        for op in ops:
            if (done := _apply(document, meanings, op)) is not None:
                answer.applied.append(done)
        if fallback:
            document["Unmodelled"] = math.nan
        answer.results = copy.deepcopy(document.get("MetricDataResults") or [])
        answer.meanings = meanings
        answer.served = True
        response_dict["body"] = _encode(document)

    return handler


@dataclass
class Expectation:
    """What a correct tap makes of a doctored answer."""

    must_fail: bool
    rows: dict[tuple[str, tuple, str, int], float]  # (metric, dims, statistic, t) -> value
    partial: bool
    held: set[tuple[str, tuple]]  # (metric, dims) of series with a query left unanswered
    not_delivered: set[Row]  # rows of queries the answer left without any result


def expectation(answer: Answer, fake: FakeCloudWatch) -> Expectation:
    """Read the doctored answer as CloudWatch's documentation says it should be read.

    A result with a failed status or unequal numbers of timestamps and values makes the call
    fail; results of unknown ids are ignored; a datapoint means a row when its timestamp and
    value mean a time in the window and a finite number (later results of one id win).
    """
    must_fail = partial = False
    rows: dict[tuple[str, tuple, str, int], float] = {}
    answered: set[str] = set()
    for item, meaning in zip(answer.results, answer.meanings, strict=True):
        query_id = item.get("Id")
        if query_id not in answer.queries:
            continue
        answered.add(query_id)
        status = item.get("StatusCode") or "Complete"
        if status in ("InternalError", "Forbidden"):
            must_fail = True
        if len(meaning.timestamps) != len(meaning.values):
            must_fail = True
            continue
        partial = partial or status == "PartialData"
        metric_name, dimensions, statistic = answer.queries[query_id]
        for timestamp, value in zip(meaning.timestamps, meaning.values, strict=True):
            if timestamp is None or value is None or not math.isfinite(value):
                continue
            if START <= timestamp < NOW:
                rows[(metric_name, dimensions, statistic, timestamp)] = value
    not_delivered: set[Row] = set()
    held: set[tuple[str, tuple]] = set()
    for query_id, (metric_name, dimensions, statistic) in answer.queries.items():
        if query_id not in answered:
            held.add((metric_name, dimensions))
            not_delivered |= fake.expected(
                START,
                NOW,
                PERIOD,
                [statistic],
                namespace=NS,
                metric_name=metric_name,
                dimensions=dict(dimensions),
            )
    return Expectation(must_fail, rows, partial, held, not_delivered)


def run_doctored(ops: list[tuple[str, int, int, int]], fallback: bool) -> Answer:
    """A sync whose GetMetricData answer is doctored by ``ops``, checked against expectation."""
    fake = FakeCloudWatch()
    for metric_name, dimensions, points in DATA_SERIES:
        fake.add_series(NS, metric_name, dimensions, points)
    tap = make_fake_tap(config(DATA_STATISTICS, fetch_units=False), fake, now=NOW)
    answer = Answer()
    tap.client.meta.events.register_first(
        DATA_EVENT, doctor_get_metric_data(fake, ops, fallback, answer)
    )

    out = capture_sync(tap)

    assert answer.served
    if out.error is not None:
        assert isinstance(out.error, CloudWatchDataError), (
            f"not a clear failure: {type(out.error).__name__}: {out.error}"
        )
    want = expectation(answer, fake)
    if want.must_fail:
        assert out.error is not None, "a broken answer was taken as data"
        assert out.records == []

    written: dict[tuple[str, tuple, str, int], float] = {}
    for record in out.records:
        row = row_of(record)
        key = (row.metric_name, row.dimensions, row.statistic, row.timestamp)
        value = record["value"]
        assert type(value) is float, f"{key}: value {value!r} is not a float"
        assert math.isfinite(value), f"{key}: non-finite value written"
        assert key in want.rows, f"{key}: a row with no finite datapoint behind it ({value})"
        assert value == want.rows[key], f"{key}: wrote {value!r}, served {want.rows[key]!r}"
        written[key] = value
    check_primary_keys_unique(out)
    if out.error is None and not want.partial:
        # A series with a query left unanswered is held back whole, as for PartialData.
        missing = sorted(k for k in set(want.rows) - set(written) if k[:2] not in want.held)
        assert not missing, f"rows served and not written: {missing[:3]}"

    must_cover = want.not_delivered | {
        Row(NS, metric_name, dimensions, statistic, timestamp, value)
        for (metric_name, dimensions, statistic, timestamp), value in want.rows.items()
    }
    assert state_violations(out.messages, must_cover) == []
    return answer


def _every(kind: str, labels: list[str]) -> list[tuple[str, int, int, int]]:
    """Each substitution at its own point (0, 1, ...) of every result: all served at once."""
    table = VALUE_SUBSTITUTES if kind == "value" else TIMESTAMP_SUBSTITUTES
    names = [entry[0] for entry in table]
    return [
        (kind, item, point, names.index(label))
        for item in range(len(DATA_SERIES) * len(DATA_STATISTICS))
        for point, label in enumerate(labels)
    ]


def _chunks(labels: list[str], size: int = 8) -> list[list[str]]:
    """At most 8 per run: the shortest series has 8 datapoints."""
    return [labels[i : i + size] for i in range(0, len(labels), size)]


@pytest.mark.parametrize("fallback", [False, True], ids=["fast-decoder", "botocore-parser"])
@pytest.mark.parametrize(
    "labels", _chunks([entry[0] for entry in VALUE_SUBSTITUTES]), ids=lambda c: c[0]
)
def test_every_odd_value_is_written_exactly_or_not_at_all(
    labels: list[str], fallback: bool
) -> None:
    """Every substitution, each served on both decoding paths (the random test may miss one)."""
    answer = run_doctored(_every("value", labels), fallback)
    assert set(labels) <= set(answer.applied)


@pytest.mark.parametrize("fallback", [False, True], ids=["fast-decoder", "botocore-parser"])
@pytest.mark.parametrize(
    "labels", _chunks([entry[0] for entry in TIMESTAMP_SUBSTITUTES]), ids=lambda c: c[0]
)
def test_every_timestamp_form_is_read_or_skipped(labels: list[str], fallback: bool) -> None:
    """Every substitution, junk ones included, on both decoding paths."""
    answer = run_doctored(_every("timestamp", labels), fallback)
    assert set(labels) <= set(answer.applied)


_item = st.integers(0, 7)
_point = st.integers(0, 15)
_choice = st.integers(0, 100)


@settings(FUZZ, max_examples=25)
@given(
    ops=st.lists(
        st.tuples(st.just("value"), _item, _point, _choice),
        min_size=1,
        max_size=6,
    ),
    fallback=st.booleans(),
)
def test_odd_values_are_written_exactly_or_not_at_all(
    ops: list[tuple[str, int, int, int]], fallback: bool
) -> None:
    run_doctored(ops, fallback)


@settings(FUZZ, max_examples=25)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["timestamp", "timestamp", "value"]), _item, _point, _choice),
        min_size=1,
        max_size=6,
    ),
    fallback=st.booleans(),
)
def test_odd_timestamps_are_read_or_skipped_never_a_crash(
    ops: list[tuple[str, int, int, int]], fallback: bool
) -> None:
    run_doctored(ops, fallback)


@st.composite
def _structure_cases(draw: st.DrawFn) -> tuple[list[tuple[str, int, int, int]], bool]:
    """Field and status operations mixed with odd values and timestamps, on either path."""
    fallback = draw(st.booleans())
    kinds = [*ITEM_OPS, "value", "readable timestamp", "timestamp"]
    ops = draw(
        st.lists(st.tuples(st.sampled_from(kinds), _item, _point, _choice), min_size=1, max_size=5)
    )
    return ops, fallback


@settings(FUZZ, max_examples=30)
@given(case=_structure_cases())
def test_missing_fields_and_odd_statuses_fail_clearly_or_lose_nothing(
    case: tuple[list[tuple[str, int, int, int]], bool],
) -> None:
    run_doctored(*case)


@settings(FUZZ, max_examples=20)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from([*UNANSWER_OPS, *ITEM_OPS[:3]]), _item, _point, _choice),
        min_size=1,
        max_size=4,
    ),
    fallback=st.booleans(),
)
def test_a_query_left_unanswered_never_lets_its_series_skip_rows(
    ops: list[tuple[str, int, int, int]], fallback: bool
) -> None:
    run_doctored(ops, fallback)


@pytest.mark.parametrize(
    ("ops", "fallback"),
    [
        # The answer leaves out one statistic's result: the other statistic's rows move the
        # series' bookmark past the rows of the missing one, which no later run fetches.
        ([("remove result", 1, 0, 0)], False),
        ([("Id unknown", 1, 0, 0)], False),
        # A body msgspec refuses goes to botocore's parser, which raises on a junk timestamp.
        ([("timestamp", 0, 0, [t[0] for t in TIMESTAMP_SUBSTITUTES].index('"yesterday"'))], True),
    ],
    ids=["result-missing", "unknown-id", "junk-timestamp-botocore-path"],
)
def test_doctored_answers_found_by_the_fuzzing(
    ops: list[tuple[str, int, int, int]], fallback: bool
) -> None:
    """Minimal examples of what the properties above found, kept as plain cases."""
    run_doctored(ops, fallback)
