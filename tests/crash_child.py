"""Run the tap's real CLI in a child process against a deterministic fake, and kill it.

Child side (``python -m tests.crash_child <spec.json>``): builds the :class:`FakeCloudWatch`
the spec describes, patches the tap's clock and client factory the way
``benchmarks/run_tap.py`` does, makes the stream write a STATE every few rows, refuses any
real network request and runs ``TapCloudWatchMetrics.cli`` with Singer messages on stdout.

Parent side (used by ``tests/test_crash.py`` and ``scripts/reliability.py``): :func:`run_child`
spawns that child with its stdout on a pipe, reads complete lines and SIGKILLs it after ``k``
of them (optionally mid-way through the next line), keeping only what a target would have
parsed; :func:`kill_chain` reruns from the last STATE kept, kill after kill, then to the end;
:func:`check_delivery` compares what was delivered with what CloudWatch holds.

Both sides build the fake with :func:`build_fake` from the same spec, so the parent knows the
exact datapoints the child can fetch without talking to it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.common import isolated_env  # the benchmark children's isolation
from tests.fakes import (
    FakeCloudWatch,
    Row,
    bookmarks,
    state_violations,
)

ROOT = Path(__file__).resolve().parent.parent  # the child runs as ``-m tests.crash_child`` here
UTC = dt.timezone.utc
# The tests' fixed "now" (tests/conftest.py), period-aligned: 2026-01-15T12:00:00Z.
NOW = int(dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp())
NAMESPACE = "Crash/App"
METRIC_NAME = "CPUUtilization"
REGION = "us-east-1"
PeriodKey = tuple[str, str, int, int]  # the stream's primary key: series_id, statistic, period, t

DEFAULT_SPEC: dict[str, Any] = {
    "series": 200,
    "span": 3600,  # seconds of history before "now" the first run fetches
    "period": 300,
    "statistics": ["Average"],
    "sample_step": 60,  # one sample a minute: every statistic of a period differs
    "now": NOW,
    "max_workers": None,  # None: the tap's default
    "fetch_units": False,
    "page_points": None,  # None: CloudWatch's page size
    # Small, so that a run writes a STATE every few dozen rows (the tap's own pace is one per
    # STATE_ROWS_PER_SERIES x series rows, a handful per run).
    "state_msg_frequency": 97,
    "state_rows_per_series": 0,
    "retry_attempts": None,  # set: botocore retries without sleeping, this many attempts
    "faults": [],  # FakeCloudWatch.fail_next keyword arguments, "operation" included
    "force_status": [],  # FakeCloudWatch.force_status keyword arguments
    "truncate": [],  # FakeCloudWatch.truncate keyword arguments
}


def full_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with every default filled in (unknown keys refused, to catch typos)."""
    unknown = set(spec) - set(DEFAULT_SPEC) - {"config_path", "state_path"}
    if unknown:
        msg = f"unknown spec keys: {sorted(unknown)}"
        raise ValueError(msg)
    return {**DEFAULT_SPEC, **spec}


def iso(epoch_seconds: int) -> str:
    """ISO 8601 UTC text of epoch seconds (the tap's start_date format)."""
    return dt.datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")


def window(spec: Mapping[str, Any]) -> tuple[int, int]:
    """``[start, end)`` of the datapoints due: ``span`` before "now" up to it (no delay)."""
    spec = full_spec(spec)
    return spec["now"] - spec["span"], spec["now"]


def build_fake(spec: Mapping[str, Any]) -> FakeCloudWatch:
    """The spec's fake CloudWatch: series with data from a period before the window to now.

    Faults in the spec are injected here too, so the child and the parent agree on them.
    """
    spec = full_spec(spec)
    start, end = window(spec)
    kwargs = {"page_points": spec["page_points"]} if spec["page_points"] else {}
    fake = FakeCloudWatch(now=spec["now"], **kwargs)
    fake.add_many(
        NAMESPACE,
        METRIC_NAME,
        spec["series"],
        start=start - spec["period"],
        end=end + spec["period"],
        step=spec["sample_step"],
        dimensions=lambda i: {"InstanceId": f"i-{i:017x}"},
    )
    for fault in spec["faults"]:
        options = dict(fault)
        fake.fail_next(options.pop("operation"), **options)
    for rule in spec["force_status"]:
        options = dict(rule)
        fake.force_status(options.pop("status"), **options)
    for rule in spec["truncate"]:
        options = dict(rule)
        fake.truncate(options.pop("after"), **options)
    return fake


def expected_rows(spec: Mapping[str, Any]) -> set[Row]:
    """Every datapoint a run (or chain of runs) of the spec must deliver."""
    spec = full_spec(spec)
    start, end = window(spec)
    fake = build_fake({**spec, "faults": [], "force_status": [], "truncate": []})
    return fake.expected(start, end, spec["period"], spec["statistics"])


def tap_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The tap's config for the spec (fake credentials; they never leave the process)."""
    spec = full_spec(spec)
    start, _ = window(spec)
    config: dict[str, Any] = {
        "aws_access_key_id": "AKIDCRASHCRASHCRASH",
        "aws_secret_access_key": "crash-secret-not-real",
        "region": REGION,
        "cloudwatch_metrics_namespace": NAMESPACE,
        "period": spec["period"],
        "statistics": list(spec["statistics"]),
        "start_date": iso(start),
        "delay_seconds": 0,
        "fetch_units": spec["fetch_units"],
    }
    if spec["max_workers"] is not None:
        config["max_workers"] = spec["max_workers"]
    return config


# -- the child --------------------------------------------------------------------------------


def child_main(argv: Sequence[str]) -> None:
    """Run the tap's CLI for the spec file ``argv[0]``; Singer messages go to stdout."""
    from _pytest.monkeypatch import MonkeyPatch  # noqa: PLC0415

    import tap_cloudwatch_metrics.tap as tap_module  # noqa: PLC0415
    from tap_cloudwatch_metrics.streams import MetricsStream  # noqa: PLC0415
    from tests.fakes import fast_retries, no_network  # noqa: PLC0415

    (spec_path,) = argv
    spec = full_spec(json.loads(Path(spec_path).read_text()))
    patch = MonkeyPatch()  # never undone: the process ends with the run
    no_network(patch)
    if spec["retry_attempts"] is not None or spec["faults"]:
        # Injected faults are retried at once (botocore's backoff would sleep up to 20 s).
        fast_retries(patch, spec["retry_attempts"])
    patch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", spec["state_msg_frequency"])
    patch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", spec["state_rows_per_series"])
    fake = build_fake(spec)
    now = float(spec["now"])
    patch.setattr(tap_module, "_wall_clock", lambda: now)
    real_make_client = tap_module.make_client

    def make_client(*args: Any, **kwargs: Any) -> Any:
        return fake.attach(real_make_client(*args, **kwargs))

    patch.setattr(tap_module, "make_client", make_client)
    config_path = spec.get("config_path") or str(Path(spec_path).with_suffix(".config.json"))
    Path(config_path).write_text(json.dumps(tap_config(spec)))
    args = ["--config", config_path]
    if spec.get("state_path"):
        args += ["--state", spec["state_path"]]
    tap_module.TapCloudWatchMetrics.cli(args=args)


# -- the parent: one run, killed or not ---------------------------------------------------------


@dataclass
class ChildRun:
    """What a target kept of one child run: its complete lines, parsed.

    ``complete``: the child ran to its end (exit 0) and every line it wrote was kept.
    ``discarded``: bytes of a partial last line the target dropped.
    """

    messages: list[dict[str, Any]]
    initial_state: dict[str, Any] | None
    kill_after: int | None
    mid_line: bool
    returncode: int
    complete: bool
    discarded: bytes = b""
    stderr_tail: str = ""

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    def resume_state(self) -> dict[str, Any] | None:
        """The state a target holds after this run: its last STATE, else the one it was given."""
        states = self.states
        return states[-1] if states else self.initial_state

    @property
    def committed_records(self) -> list[dict[str, Any]]:
        """What a target that commits at each STATE keeps: a complete run's records, else the
        records before the last STATE (the rest was not committed when the run died)."""
        return committed_records(self.messages, complete=self.complete)

    def describe(self) -> str:
        if self.kill_after is not None:
            where = f"killed after {self.kill_after} lines"
        else:
            where = "to the end" if self.returncode == 0 else "failed"
        partial = f" + {len(self.discarded)} bytes of a partial line" if self.discarded else ""
        return (
            f"run {where}{partial} (exit {self.returncode}; kept {len(self.messages)} lines, "
            f"{len(self.records)} records, {len(self.states)} STATEs)"
        )


# One Singer line, decoded with msgspec: STATEs hold every series' bookmark, and the standard
# library's parser was most of a campaign's own time.
decode_line = msgspec.json.Decoder().decode


def parse_lines(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    """Singer messages of complete JSON lines."""
    return [decode_line(line) for line in lines if line.strip()]


def committed_records(
    messages: Sequence[Mapping[str, Any]], *, complete: bool
) -> list[dict[str, Any]]:
    """Records a target that commits at each STATE has once the run ended or died.

    Many targets load in batches and confirm a STATE only once the rows before it are stored;
    rows after the last STATE of a dead run are then gone, and the rerun from that STATE must
    send them again. Counting only these makes a STATE ahead of its records show as loss even
    when the dead run happened to write the skipped rows after it.
    """
    last = len(messages) if complete else 0
    if not complete:
        for index in range(len(messages) - 1, -1, -1):
            if messages[index]["type"] == "STATE":
                last = index
                break
    return [m["record"] for m in messages[:last] if m["type"] == "RECORD"]


def _read_some(fd: int) -> bytes:
    return os.read(fd, 1 << 16)


def run_child(
    spec: Mapping[str, Any],
    workdir: Path,
    *,
    state: Mapping[str, Any] | None = None,
    kill_after: int | None = None,
    mid_line: bool = False,
    cut: float = 0.5,
    timeout: float = 120.0,
    allow_failure: bool = False,
) -> ChildRun:
    """Run the child; with ``kill_after=k`` SIGKILL it once ``k`` complete lines are read.

    With ``mid_line`` the target has also read part of line ``k + 1`` (a random prefix of what
    has arrived of it: ``cut`` of it, at least one byte) when the kill comes; it is discarded,
    as a target parsing JSON lines would. Lines after the kill point are not kept: the target
    saw exactly ``k`` lines. ``k = 0`` kills the child before its first line.

    A child that exits non-zero on its own raises :class:`ChildFailedError` (the tap crashed),
    unless ``allow_failure`` (the spec injects faults meant to fail the run): then the run is
    returned incomplete, to be rerun from its last STATE like a killed one. A child silent for
    ``timeout`` seconds is killed and reported as failed.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    handle, spec_name = tempfile.mkstemp(suffix=".json", prefix="spec-", dir=workdir)
    os.close(handle)
    spec_path = Path(spec_name)
    child_spec = dict(full_spec(spec))
    if state is not None:
        state_path = spec_path.with_suffix(".state.json")
        state_path.write_text(json.dumps(state))
        child_spec["state_path"] = str(state_path)
    spec_path.write_text(json.dumps(child_spec))
    stderr_path = spec_path.with_suffix(".stderr")
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_child", str(spec_path)],
            cwd=ROOT,
            env=isolated_env(workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        lines: list[bytes] = []
        pending = b""
        discarded = b""
        killed = False
        try:
            if kill_after == 0 and not mid_line:
                proc.send_signal(signal.SIGKILL)
                killed = True
            deadline = time.monotonic() + timeout
            while not killed:
                if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    msg = f"the child wrote nothing for {timeout} s (hung?); killed"
                    raise ChildFailedError(msg)
                chunk = _read_some(fd)
                if not chunk:
                    break  # EOF: the child ended on its own
                pending += chunk
                *whole, pending = pending.split(b"\n")
                lines.extend(whole)
                if kill_after is None or len(lines) < kill_after:
                    continue
                if len(lines) == kill_after and mid_line and not pending:
                    continue  # wait for the first bytes of the next line
                if mid_line:
                    # The first byte of line k+1 is in ``pending`` or in the lines read past k.
                    following = lines[kill_after] if len(lines) > kill_after else pending
                    size = min(max(1, int(cut * len(following))), max(1, len(following) - 1))
                    discarded = following[:size]
                del lines[kill_after:]
                proc.send_signal(signal.SIGKILL)
                killed = True
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
    tail = stderr_path.read_text(errors="replace")[-3000:]
    if not killed and pending:
        discarded = pending  # the child ended without finishing a line: never parsed
    messages = parse_lines(lines)
    complete = not killed and proc.returncode == 0 and not discarded
    if not killed and proc.returncode != 0 and not allow_failure:
        msg = f"the child failed (exit {proc.returncode}) without being killed:\n{tail}"
        raise ChildFailedError(msg)
    return ChildRun(
        messages=messages,
        initial_state=dict(state) if state is not None else None,
        kill_after=kill_after if killed else None,
        mid_line=mid_line and killed,
        returncode=proc.returncode,
        complete=complete,
        discarded=discarded,
        stderr_tail=tail,
    )


class ChildFailedError(RuntimeError):
    """The child exited non-zero on its own (a crash of the tap, not an injected kill)."""


# -- chains of kills, and what they delivered -----------------------------------------------------


@dataclass
class KillPlan:
    """Where to kill one run: after ``k`` complete lines, maybe mid-way through the next one."""

    fraction: float  # of the run's estimated output length; 0 kills before the first line
    mid_line: bool
    cut: float = 0.5  # with ``mid_line``: how much of the next line the target has read

    @classmethod
    def draw(cls, rng: random.Random, mid_line_share: float) -> KillPlan:
        """A random kill point. Every draw is made here, before any child runs, so a seed gives
        the same kill points whatever the pipe's timing."""
        return cls(rng.random(), rng.random() < mid_line_share, rng.random())


@dataclass
class Chain:
    """Every run of one chain, in order: killed runs, then the run that completed."""

    runs: list[ChildRun] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(1 for r in self.runs if r.kill_after is not None)

    def describe(self) -> str:
        return "; ".join(r.describe() for r in self.runs)


def series_ids(spec: Mapping[str, Any]) -> dict[tuple[str, str, tuple], str]:
    """(namespace, metric name, dimensions) -> the tap's series_id, for the spec's series."""
    from tap_cloudwatch_metrics.series import Series  # noqa: PLC0415

    ids: dict[tuple[str, str, tuple], str] = {}
    for row in expected_rows(spec):
        identity = (row.namespace, row.metric_name, row.dimensions)
        if identity not in ids:
            ids[identity] = Series(REGION, *identity).series_id
    return ids


def keyed(spec: Mapping[str, Any], rows: Iterable[Row]) -> dict[PeriodKey, float]:
    """Expected rows by the stream's primary key."""
    ids = series_ids(spec)
    period = full_spec(spec)["period"]
    return {
        (ids[(r.namespace, r.metric_name, r.dimensions)], r.statistic, period, r.timestamp): r.value
        for r in rows
    }


def estimate_lines(
    expected: Mapping[PeriodKey, float],
    state: Mapping[str, Any] | None,
    lines_per_row: float,
) -> int:
    """About how many lines a run resumed from ``state`` writes (rows after each bookmark)."""
    marks = bookmarks(state or {})
    remaining = sum(1 for key in expected if key[3] > marks.get(key[0], -1))
    return max(1, round(remaining * lines_per_row) + 2)


def kill_chain(
    spec: Mapping[str, Any],
    workdir: Path,
    plans: Sequence[KillPlan],
    *,
    expected: Mapping[PeriodKey, float],
    lines_per_row: float,
    state: Mapping[str, Any] | None = None,
) -> Chain:
    """Run, kill per ``plans`` (each rerun from the last STATE kept), then run to the end.

    A kill point is a fraction of the run's estimated output (rows still due after the state's
    bookmarks); a run that completes before its kill point ends the chain early.
    """
    chain = Chain()
    current = dict(state) if state is not None else None
    for plan in plans:
        estimate = estimate_lines(expected, current, lines_per_row)
        k = min(estimate, int(plan.fraction * (estimate + 1)))
        run = run_child(
            spec, workdir, state=current, kill_after=k, mid_line=plan.mid_line, cut=plan.cut
        )
        chain.runs.append(run)
        if run.complete:
            return chain
        current = run.resume_state()
    final = run_child(spec, workdir, state=current)
    chain.runs.append(final)
    return chain


@dataclass
class Delivery:
    """What a set of runs delivered, compared with what CloudWatch holds."""

    expected: int
    delivered: int  # distinct expected keys delivered
    lost: list[PeriodKey]
    repeated: int  # deliveries of a key beyond its first, same value
    conflicting: list[str]  # keys delivered with a value other than CloudWatch's, or unknown

    @property
    def ok(self) -> bool:
        return not self.lost and not self.conflicting


def record_key(record: Mapping[str, Any]) -> PeriodKey:
    """The stream's primary key of a RECORD's record (timestamp as epoch seconds)."""
    from tests.fakes import epoch  # noqa: PLC0415

    return (
        record["series_id"],
        record["statistic"],
        record["period"],
        epoch(record["timestamp"]),
    )


def same_value(a: float, b: float) -> bool:
    """Equal values (NaN equal to NaN: CloudWatch may answer it, and it is the same value)."""
    return a == b or (a != a and b != b)


def check_delivery(
    expected: Mapping[PeriodKey, float], records: Iterable[Mapping[str, Any]]
) -> Delivery:
    """Lost, repeated and conflicting datapoints of ``records`` (all runs' RECORDs together)."""
    seen: dict[PeriodKey, list[float]] = defaultdict(list)
    for record in records:
        seen[record_key(record)].append(record["value"])
    conflicting: list[str] = []
    repeated = 0
    for key, values in seen.items():
        if key not in expected:
            conflicting.append(f"{key}: delivered {values[0]!r}, CloudWatch has no such datapoint")
            continue
        wrong = [v for v in values if not same_value(v, expected[key])]
        if wrong:
            conflicting.append(f"{key}: delivered {values}, CloudWatch has {expected[key]!r}")
        repeated += len(values) - 1
    lost = sorted(key for key in expected if key not in seen)
    delivered = sum(1 for key in seen if key in expected)
    return Delivery(len(expected), delivered, lost, repeated, conflicting)


def states_ahead(chain: Chain, rows: set[Row]) -> list[str]:
    """STATEs of any run of the chain that bookmark rows not written before them."""
    return [
        f"run {number}: {problem}"
        for number, run in enumerate(chain.runs)
        for problem in state_violations(run.messages, rows, run.initial_state)
    ]


def final_state_problems(chain: Chain, expected: Mapping[PeriodKey, float]) -> list[str]:
    """The chain must end with a completed run whose last STATE bookmarks every series at the
    last period CloudWatch has for it (a rerun from it would fetch nothing twice, skip nothing).
    """
    final = chain.runs[-1]
    if not final.complete:
        return ["the chain's last run did not complete"]
    if not final.states:
        return ["the completed run wrote no STATE"]
    last: dict[str, int] = {}
    for series_id, _, _, timestamp in expected:
        last[series_id] = max(last.get(series_id, timestamp), timestamp)
    marks = bookmarks(final.states[-1])
    wrong = {s: (marks.get(s), t) for s, t in last.items() if marks.get(s) != t}
    if not wrong:
        return []
    sample = dict(list(wrong.items())[:3])
    return [
        f"final STATE: {len(wrong)} series not bookmarked at their last period "
        f"(bookmark, expected): {sample}"
    ]


def committed_loss(chain: Chain, expected: Mapping[PeriodKey, float]) -> list[str]:
    """Datapoints a target committing at each STATE never stores (see committed_records)."""
    kept = check_delivery(expected, (r for run in chain.runs for r in run.committed_records))
    if not kept.lost:
        return []
    return [
        f"{len(kept.lost)} datapoints lost by a target that commits at each STATE, "
        f"e.g. {kept.lost[:5]}"
    ]


def chain_problems(
    spec: Mapping[str, Any], chain: Chain, rows: set[Row] | None = None
) -> list[str]:
    """Everything wrong with a chain: loss (of every line kept, and of what a target committing
    at each STATE keeps), conflicts, STATEs ahead of their records, incomplete final bookmarks."""
    rows = rows if rows is not None else expected_rows(spec)
    expected = keyed(spec, rows)
    problems: list[str] = []
    delivery = check_delivery(expected, (r for run in chain.runs for r in run.records))
    if delivery.lost:
        problems.append(f"{len(delivery.lost)} datapoints lost, e.g. {delivery.lost[:5]}")
    problems.extend(delivery.conflicting[:5])
    problems.extend(committed_loss(chain, expected))
    problems.extend(final_state_problems(chain, expected))
    ahead = states_ahead(chain, rows)
    if ahead:
        problems.append(f"{len(ahead)} STATE bookmarks ahead of their records, e.g.:")
        problems.extend(ahead[:5])
    return problems


if __name__ == "__main__":
    child_main(sys.argv[1:])
