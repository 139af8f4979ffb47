"""What the benchmark's processes share: workloads, the fake they read from, the child harness.

Both children (the tap and the floor) build the same :class:`tests.fakes.FakeCloudWatch` with
the same lazily computed series and register it on their client's ``before-send`` event, so
botocore serializes, signs and parses for real and only the socket is replaced. The fake's own
cost is measured inside each child (CPU of its ``before-send`` handler, per thread, and of
building it) and reported, so readers can subtract it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UTC = dt.timezone.utc
# A fixed, period-aligned "now" for every run (the tests use the same one).
NOW = int(dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp())
NAMESPACE = "Bench/App"
METRIC_NAME = "CPUUtilization"
REGION = "us-east-1"
ACCESS_KEY = "AKIDBENCHBENCHBENCH"
SECRET_KEY = "bench-secret-not-real"
# The tap's default delay (a period is emitted only once ``end + delay <= now``). Kept here so
# the parent does not import the tap (which may be mid-change); the smoke test checks it.
DEFAULT_DELAY_SECONDS = 300
DAY = 86400


@dataclasses.dataclass(frozen=True)
class Workload:
    """A first run over ``series`` series for ``span`` seconds ending at the run's window end."""

    name: str
    series: int
    span: int
    period: int = 300
    statistics: tuple[str, ...] = ("Average",)
    # One fake sample every ``sample_step`` seconds (one per period keeps the fake cheap).
    sample_step: int = 300
    now: int = NOW
    delay: int = DEFAULT_DELAY_SECONDS
    # Seconds the fake waits before answering each GetMetricData request (network and server
    # time against AWS; 0 by default: the fake answers at once, so CPU is what is compared).
    latency: float = 0.0

    @property
    def end(self) -> int:
        """Exclusive end of every window: the last period closed ``delay`` before ``now``."""
        limit = self.now - self.delay
        return limit - limit % self.period

    @property
    def start(self) -> int:
        return self.end - self.span

    @property
    def points_per_series(self) -> int:
        return self.span // self.period

    @property
    def expected_rows(self) -> int:
        return self.series * self.points_per_series * len(self.statistics)

    @property
    def min_billed(self) -> int:
        """GetMetricData bills per query per call: at least one query per series and statistic."""
        return self.series * len(self.statistics)

    def describe(self) -> str:
        days, rest = divmod(self.span, DAY)
        span = f"{days} d" if days and not rest else f"{self.span // 3600} h"
        waits = f", {self.latency:g} s latency per GetMetricData" if self.latency else ""
        return (
            f"{self.series:,} series x {span} ({self.points_per_series:,} points each, "
            f"{self.expected_rows:,} rows{waits})"
        )

    def tap_config(self) -> dict[str, Any]:
        """The tap's config: defaults everywhere except what the workload fixes."""
        return {
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region": REGION,
            "cloudwatch_metrics_namespace": NAMESPACE,
            "period": self.period,
            "statistics": list(self.statistics),
            "start_date": iso(self.start),
        }

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        data = json.loads(text)
        data["statistics"] = tuple(data["statistics"])
        return cls(**data)


FULL = {
    "a": Workload("a", series=10_000, span=3600),
    "b": Workload("b", series=1_000, span=14 * DAY),
}
QUICK = {
    "a": Workload("a", series=200, span=3600),
    "b": Workload("b", series=20, span=DAY),
}


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def instance_dimensions(index: int) -> dict[str, str]:
    return {"InstanceId": f"i-{index:017x}"}


def build_fake(workload: Workload) -> Any:
    """The fake CloudWatch of a workload: its series carry data from the window start to now."""
    from tests.fakes import FakeCloudWatch  # noqa: PLC0415

    fake = FakeCloudWatch(now=workload.now)
    fake.add_many(
        NAMESPACE,
        METRIC_NAME,
        workload.series,
        start=workload.start,
        end=workload.now,
        step=workload.sample_step,
        dimensions=instance_dimensions,
        unit="Percent",
    )
    if workload.latency:
        fake.latency["GetMetricData"] = workload.latency
    return fake


# Memory the fake holds per datapoint of a GetMetricData cursor (a (timestamp, value) tuple in
# a list), measured with tracemalloc on CPython 3.11: about 121 bytes.
FAKE_BYTES_PER_CURSOR_POINT = 121


class HandlerTimer:
    """Wraps ``fake.handle`` (before it is attached) to measure the fake's own CPU and wall time.

    CPU is per thread (``time.thread_time``), so requests made from worker threads (the tap's
    unit lookups) are neither missed nor counted twice.

    The fake computes every datapoint of a GetMetricData request at its first page and keeps
    that cursor for the continuation pages, and it never forgets a cursor. So that the fake's
    memory does not pile up in the child that pages (the floor), the wrapper drops cursors whose
    pages have all been served (no client here resends an old token), and it records the most
    datapoints the fake held in live cursors, to estimate the fake's share of the peak RSS.
    """

    def __init__(self, fake: Any) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.wall = 0.0
        self.peak_cursor_points = 0
        inner: Callable[..., Any] = fake.handle

        def handle(request: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return inner(request, **kwargs)
            finally:
                self._slim_last_record(fake)
                self._account_cursors(fake)
                self.cpu += time.thread_time() - cpu
                self.wall += time.perf_counter() - wall
                self.calls += 1

        fake.handle = handle  # attach() registers ``self.handle``: this instance attribute

    @staticmethod
    def _slim_last_record(fake: Any) -> None:
        """Keep only what the summary counts of the request just recorded.

        The fake keeps every parsed request (500 queries each): megabytes that would count
        in the child's peak RSS as if the client under test held them.
        """
        with fake._lock:
            if not fake.calls:
                return
            recorded = fake.calls[-1]
            request = recorded.request
            if isinstance(request, dict) and "MetricDataQueries" in request:
                slim = {"MetricDataQueries": range(len(request["MetricDataQueries"]))}
                if request.get("NextToken"):
                    slim["NextToken"] = request["NextToken"]
                recorded.request = slim
            elif recorded.operation == "GetMetricStatistics":
                recorded.request = {}

    def _account_cursors(self, fake: Any) -> None:
        cursors = fake._cursors
        if not cursors:
            return
        with fake._lock:
            live = {id(cursor): cursor for cursor in cursors.values()}
            held = sum(len(points) for cursor in live.values() for points in cursor.points)
            self.peak_cursor_points = max(self.peak_cursor_points, held)
            for token, cursor in list(cursors.items()):
                if all(
                    offset >= len(points)
                    for offset, points in zip(cursor.offsets, cursor.points, strict=True)
                ):
                    del cursors[token]

    @property
    def peak_cursor_mb(self) -> float:
        return self.peak_cursor_points * FAKE_BYTES_PER_CURSOR_POINT / 2**20


def refuse_network() -> None:
    """Any real HTTP request from botocore fails the run (the fake must answer everything)."""
    import botocore.httpsession  # noqa: PLC0415

    def refuse(self: Any, request: Any) -> Any:
        msg = f"real network request attempted: {request.method} {request.url}"
        raise RuntimeError(msg)

    botocore.httpsession.URLLib3Session.send = refuse


def api_summary(fake: Any) -> dict[str, Any]:
    """Requests the fake answered (and refused), from ``fake.calls``."""
    answered = Counter(c.operation for c in fake.calls if c.ok)
    refused = Counter(c.operation for c in fake.calls if not c.ok)
    gmd = [c for c in fake.calls if c.ok and c.operation == "GetMetricData"]
    return {
        "answered": dict(answered),
        "refused": dict(refused),
        "get_metric_data_calls": answered["GetMetricData"],
        "list_metrics_calls": answered["ListMetrics"],
        "get_metric_statistics_calls": answered["GetMetricStatistics"],
        "billed_metric_requests": fake.billed_metric_requests,
        "continuation_pages": sum(1 for c in gmd if c.request.get("NextToken")),
        "max_queries_per_call": max((len(c.request["MetricDataQueries"]) for c in gmd), default=0),
        "datapoints_returned": sum(c.result.get("points", 0) for c in gmd),
    }


def _self_usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


@contextmanager
def child_harness(kind: str, argv: list[str]) -> Iterator[tuple[Workload, Any, list[str]]]:
    """Set up a child: workload, fake (timed), no network; write its summary file at exit.

    ``argv``: ``<workload json> <summary path> [child args...]``. Yields the workload, the fake
    and the remaining args; the summary (API counts, fake cost, phases) is written even when
    the child fails.
    """
    started_wall = time.perf_counter()
    workload_json, summary_path, *rest = argv
    workload = Workload.from_json(workload_json)
    import_cpu_start, _ = _self_usage()
    # Imports both children need (the tap's own come with the CLI, and count as its run).
    import botocore.session  # noqa: F401, PLC0415

    import tests.fakes  # noqa: F401, PLC0415

    imports_cpu, _ = _self_usage()
    build_wall = time.perf_counter()
    fake = build_fake(workload)
    timer = HandlerTimer(fake)
    refuse_network()
    # The fake's datapoints live in the child but belong to neither program: frozen, they are
    # not walked by every full collection of the cyclic GC, a cost no real run has (it made both
    # children about 0.4 s slower on workload a).
    gc.freeze()
    setup_cpu, setup_rss = _self_usage()
    setup_done = time.perf_counter()
    summary: dict[str, Any] = {"kind": kind, "workload": workload.name, "exit_code": None}
    try:
        yield workload, fake, rest
        summary["exit_code"] = 0
    except SystemExit as exc:
        code = exc.code
        summary["exit_code"] = code if isinstance(code, int) else (0 if code is None else 1)
        raise
    except BaseException:
        summary["exit_code"] = 1
        raise
    finally:
        sys.stdout.flush()
        end_cpu, end_rss = _self_usage()
        summary.update(api_summary(fake))
        summary.update(
            {
                "fake_handler_calls": timer.calls,
                "fake_handler_cpu": timer.cpu,
                "fake_handler_wall": timer.wall,
                "fake_peak_cursor_points": timer.peak_cursor_points,
                "fake_peak_cursor_mb": timer.peak_cursor_mb,
                "startup_imports_cpu": imports_cpu - import_cpu_start,
                "fake_build_cpu": setup_cpu - imports_cpu,
                "fake_build_wall": setup_done - build_wall,
                "setup_wall": setup_done - started_wall,
                "run_wall": time.perf_counter() - setup_done,
                "run_cpu": end_cpu - setup_cpu,
                "rss_after_setup_mb": setup_rss,
                "self_cpu": end_cpu,
                "self_maxrss_mb": end_rss,
                # numpy is no dependency of the tap, but joblib (imported by singer_sdk) loads
                # it whenever it is installed: about 12 MB more peak RSS.
                "numpy_loaded": "numpy" in sys.modules,
            }
        )
        Path(summary_path).write_text(json.dumps(summary, indent=1))


def tap_source_version() -> str:
    """Which tap code ran: git HEAD, whether the package is modified, and a digest of its source.

    The digest (sha256 of every ``tap_cloudwatch_metrics/*.py``) tells two reports apart when the
    tap changes between runs without a commit.
    """
    import hashlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    digest = hashlib.sha256()
    for path in sorted((ROOT / "tap_cloudwatch_metrics").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "tap_cloudwatch_metrics")
    state = f"{len(dirty.splitlines())} file(s) modified or new" if dirty else "clean"
    return f"git {head} ({state}), source sha256 {digest.hexdigest()[:12]}"


def isolated_env(tmp: Path) -> dict[str, str]:
    """The children's environment: no AWS or tap settings of the developer's, no metadata."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TAP_CLOUDWATCH_METRICS_"))
    }
    env.update(
        AWS_CONFIG_FILE=str(tmp / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONHASHSEED="0",
    )
    env.pop("PYTHONPATH", None)
    return env
