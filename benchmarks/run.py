"""Benchmark: the tap against the floor (a minimal boto3 loop), same fake CloudWatch, same fetch.

    .venv/bin/python benchmarks/run.py [--workload a|b|all] [--repeat N] [--quick]
                                       [--only tap|floor] [--output PATH] [--json PATH]

Workloads (a first run each, at a fixed now, period 300, Average, the tap's default delay):
  a  10,000 series x 1 hour  -> 120,000 rows
  b   1,000 series x 14 days -> 4,032,000 rows
``--quick``: 200 series x 1 hour and 20 series x 1 day (the smoke test's sizes).

Each run is its own child process (``run_tap.py`` or ``run_floor.py``); this parent reads the
child's stdout through a pipe (lines, bytes, RECORD and STATE messages) and takes the child's
own CPU time and peak RSS from ``os.wait4``. The child reports its API requests (from the
fake's record of calls) and the fake's own CPU cost in a summary file. With ``--repeat N``
every number is the median over the N runs. The Markdown table is printed and written to
``--output`` (default ``benchmarks/results.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import FULL, QUICK, ROOT, Workload, isolated_env, tap_source_version

HERE = Path(__file__).resolve().parent
SCRIPTS = {"tap": HERE / "run_tap.py", "floor": HERE / "run_floor.py"}
RECORD_MARK = b'\n{"type":"RECORD"'
STATE_MARK = b'\n{"type":"STATE"'
SCHEMA_MARK = b'\n{"type":"SCHEMA"'
CHUNK = 1 << 20


class OutputCounter:
    """Counts what a child writes, chunk by chunk (fast enough to keep up with millions of lines).

    Only whole lines are inspected; a message type is recognised at the start of its line in
    the SDK's compact JSON (``{"type":"RECORD"``). The last STATE message is kept whole.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.records = 0
        self.schemas = 0
        self.states = 0
        self.state_bytes = 0
        self.last_state = b""
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if cut:
            self._whole_lines(data[:cut])

    def close(self) -> None:
        if self._tail:
            self._whole_lines(self._tail + b"\n")
            self._tail = b""

    def _whole_lines(self, part: bytes) -> None:
        self.lines += part.count(b"\n")
        marked = b"\n" + part
        self.records += marked.count(RECORD_MARK)
        self.schemas += marked.count(SCHEMA_MARK)
        at = marked.find(STATE_MARK)
        while at >= 0:
            end = marked.find(b"\n", at + 1)
            message = marked[at + 1 : end]
            self.states += 1
            self.state_bytes += len(message)
            self.last_state = message
            at = marked.find(STATE_MARK, end)

    def bookmarked_series(self) -> int:
        """Partitions with a bookmark in the last STATE message."""
        if not self.last_state:
            return 0
        value = json.loads(self.last_state)["value"]
        streams = value.get("bookmarks", {}).values()
        return sum(
            1 for s in streams for p in s.get("partitions", []) if p.get("replication_key_value")
        )


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(
    kind: str,
    workload: Workload,
    tmp: Path,
    overrides: dict[str, Any] | None = None,
    python: str = sys.executable,
) -> dict[str, Any]:
    """One run of ``kind`` (tap or floor) as a child process of ``python``; its numbers."""
    summary_path = tmp / f"{kind}-{workload.name}-summary.json"
    stderr_path = tmp / f"{kind}-{workload.name}-stderr.log"
    summary_path.unlink(missing_ok=True)
    argv = [python, str(SCRIPTS[kind]), workload.to_json(), str(summary_path)]
    if kind == "tap":
        config_path = tmp / f"config-{workload.name}.json"
        config_path.write_text(json.dumps({**workload.tap_config(), **(overrides or {})}))
        argv.append(str(config_path))
    counter = OutputCounter()
    with stderr_path.open("wb") as stderr:
        busy, parent_cpu = busy_cpu_seconds(), _own_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, env=isolated_env(tmp)
        )
        assert proc.stdout is not None
        read = proc.stdout.read1
        while chunk := read(CHUNK):
            counter.feed(chunk)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        busy, parent_cpu = busy_cpu_seconds() - busy, _own_cpu() - parent_cpu
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
    counter.close()
    if proc.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-4000:]
        msg = f"{kind} run of workload {workload.name} exited {proc.returncode}:\n{tail}"
        raise RuntimeError(msg)
    summary = json.loads(summary_path.read_text())
    records = counter.records if kind == "tap" else counter.lines
    cpu = usage.ru_utime + usage.ru_stime
    fake_cpu = summary["fake_handler_cpu"] + summary["fake_build_cpu"]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_per_1k_rows": cpu / records * 1000 if records else float("nan"),
        "records": records,
        "records_per_s": records / wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rss_after_setup_mb": summary["rss_after_setup_mb"],
        "numpy_loaded": summary.get("numpy_loaded", False),
        "get_metric_data_calls": summary["get_metric_data_calls"],
        "list_metrics_calls": summary["list_metrics_calls"],
        "get_metric_statistics_calls": summary["get_metric_statistics_calls"],
        "billed_metric_requests": summary["billed_metric_requests"],
        "min_billed": workload.min_billed,
        "continuation_pages": summary["continuation_pages"],
        "max_queries_per_call": summary["max_queries_per_call"],
        "datapoints_returned": summary["datapoints_returned"],
        "refused_requests": sum(summary["refused"].values()),
        "lines": counter.lines,
        "stdout_mb": counter.bytes / 1e6,
        "schemas": counter.schemas,
        "states": counter.states,
        "state_bytes": counter.state_bytes,
        "last_state_bytes": len(counter.last_state),
        "bookmarked_series": counter.bookmarked_series(),
        "fake_handler_calls": summary["fake_handler_calls"],
        "fake_handler_cpu_s": summary["fake_handler_cpu"],
        "fake_build_cpu_s": summary["fake_build_cpu"],
        "fake_peak_cursor_mb": summary["fake_peak_cursor_mb"],
        "fake_cpu_s": fake_cpu,
        "fake_share": fake_cpu / cpu if cpu else 0.0,
        "cpu_net_of_fake_s": cpu - fake_cpu,
        "parent_cpu_s": parent_cpu,
        # Other processes on the machine during the run (noise: should be near 0).
        "other_cpu_s": max(0.0, busy - cpu - parent_cpu),
        "setup_wall_s": summary["setup_wall"],
        "run_wall_s": summary["run_wall"],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


# -- report --------------------------------------------------------------------------------


def _num(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _int(value: float) -> str:
    """A count (a median of counts can be a half: shown rounded)."""
    return f"{round(value):,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("singer-sdk", "botocore", "boto3")
    )
    return (
        f"{os.cpu_count()} CPUs (nproc), {model}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; {versions}"
    )


def command_line() -> str:
    python = os.path.relpath(sys.executable, ROOT)
    script = os.path.relpath(Path(sys.argv[0]).resolve(), ROOT)
    text = f"`{shlex.join([python, script, *sys.argv[1:]])}`"
    if os.environ.get("MAKELEVEL"):
        text = f"`make bench`, i.e. {text}"
    return text


def report(
    results: dict[str, dict[str, dict[str, Any]]],
    workloads: dict[str, Workload],
    repeat: int,
    overrides: dict[str, Any] | None = None,
    versions: tuple[str, str] = ("", ""),
    python: str = sys.executable,
    numpy_loaded: bool = False,
) -> str:
    out = [
        "# tap-cloudwatch-metrics benchmark: the tap vs a minimal boto3 loop",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
        f"- command: {command_line()}",
        f"- tap code: {versions[0]}"
        + (
            f"; **its source changed during the benchmark** (at the end: {versions[1]})"
            if versions[1].rsplit(" ", 1)[-1] != versions[0].rsplit(" ", 1)[-1]
            else ""
        ),
        f"- children's Python: `{os.path.relpath(python, ROOT)}`; numpy "
        + (
            "**was loaded** (joblib, which singer_sdk imports, loads it when installed: about "
            "12 MB more peak RSS than in the tap's own venv)"
            if numpy_loaded
            else "not loaded (as in a venv of the tap's own dependencies, which Meltano makes)"
        ),
        f"- numbers: {'median of ' + str(repeat) + ' runs' if repeat > 1 else 'one run'} each; "
        "CPU and peak RSS are the child process's own (`os.wait4`)",
        "- fake CloudWatch (`tests/fakes.py`) answering at `before-send` inside each child; "
        "fixed now 2026-01-15T12:00:00Z, period 300, Average, default delay "
        f"({next(iter(workloads.values())).delay} s), one fake sample per period",
        "- tap config: the tap's defaults plus namespace, region, keys, period, statistics, "
        "start_date"
        + (f"; overridden: `{json.dumps(overrides)}`" if overrides else " (nothing overridden)"),
        "",
    ]
    for name, workload in workloads.items():
        out.append(
            f"- workload {name}: {workload.describe()}; window "
            f"{dt.datetime.fromtimestamp(workload.start, dt.timezone.utc):%Y-%m-%dT%H:%MZ} .. "
            f"{dt.datetime.fromtimestamp(workload.end, dt.timezone.utc):%Y-%m-%dT%H:%MZ}"
        )
    out.append("")
    rows = []
    for name, by_kind in results.items():
        for kind, r in by_kind.items():
            rows.append(
                [
                    name,
                    kind,
                    _num(r["wall_s"]),
                    _num(r["cpu_s"]),
                    _num(r["cpu_per_1k_rows"], 3),
                    _int(r["records"]),
                    _int(r["records_per_s"]),
                    _int(r["peak_rss_mb"]),
                    _int(r["get_metric_data_calls"]),
                    _int(r["list_metrics_calls"]),
                    _int(r["get_metric_statistics_calls"]),
                    _int(r["billed_metric_requests"]),
                    _int(r["min_billed"]),
                    _int(r["states"]),
                    _int(r["state_bytes"]),
                    _int(r["last_state_bytes"]),
                ]
            )
    out += _table(
        [
            "workload",
            "run",
            "wall s",
            "CPU s",
            "CPU s / 1k rows",
            "records",
            "records/s",
            "peak RSS MB",
            "GetMetricData",
            "ListMetrics",
            "GetMetricStatistics",
            "billed metric-requests",
            "min billed",
            "STATE msgs",
            "STATE bytes",
            "last STATE bytes",
        ],
        rows,
    )
    out.append("")
    for name, by_kind in results.items():
        if "tap" in by_kind and "floor" in by_kind:
            tap, floor = by_kind["tap"], by_kind["floor"]
            wall = tap["wall_s"] / floor["wall_s"]
            cpu = tap["cpu_s"] / floor["cpu_s"]
            net = tap["cpu_net_of_fake_s"] / floor["cpu_net_of_fake_s"]
            billed = tap["billed_metric_requests"] / floor["billed_metric_requests"]
            out.append(
                f"- workload {name}: tap wall / floor wall = **{wall:.2f}x**; CPU {cpu:.2f}x; "
                f"CPU net of the fake {net:.2f}x; billed metric-requests {billed:.2f}x"
            )
    out += [
        "",
        "## The fake's share, and output details",
        "",
        "Fake CPU = building the fake's series + its `before-send` handler (request JSON "
        "parse, answer computation, response JSON), measured per thread inside the child. "
        "Subtract it to compare the tap and the floor alone. Setup = interpreter start, "
        "imports both children share, and building the fake (in the wall time above). "
        "The fake also holds every datapoint of a GetMetricData request from its first page "
        "to its last (about 121 bytes each; finished cursors are dropped by the benchmark): "
        "'fake cursors MB' estimates that share of the child's peak RSS, large only for "
        "requests that page (the floor's 500-query calls). The last two columns check the "
        "conditions: the parent's own CPU while reading the child's output, and CPU used by "
        "any other process on the machine during the run (from /proc/stat; with "
        f"{os.cpu_count()} CPUs, more than a few seconds means the numbers above are disturbed).",
        "",
    ]
    rows = []
    for name, by_kind in results.items():
        for kind, r in by_kind.items():
            rows.append(
                [
                    name,
                    kind,
                    _int(r["fake_handler_calls"]),
                    _num(r["fake_handler_cpu_s"]),
                    _num(r["fake_build_cpu_s"]),
                    f"{r['fake_share']:.0%}",
                    _num(r["cpu_net_of_fake_s"]),
                    _num(r["setup_wall_s"]),
                    _int(r["rss_after_setup_mb"]),
                    _int(r["fake_peak_cursor_mb"]),
                    _int(r["continuation_pages"]),
                    _int(r["max_queries_per_call"]),
                    _int(r["lines"]),
                    _num(r["stdout_mb"], 1),
                    _int(r["bookmarked_series"]),
                    _num(r["parent_cpu_s"]),
                    _num(r["other_cpu_s"]),
                ]
            )
    out += _table(
        [
            "workload",
            "run",
            "fake requests",
            "fake handler CPU s",
            "fake build CPU s",
            "fake share of CPU",
            "CPU net of fake s",
            "setup wall s",
            "RSS after setup MB",
            "fake cursors MB (peak, est.)",
            "continuation pages",
            "max queries/call",
            "stdout lines",
            "stdout MB",
            "series bookmarked",
            "parent CPU s (reading)",
            "other processes' CPU s",
        ],
        rows,
    )
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["a", "b", "all"], default="all")
    parser.add_argument("--only", choices=["tap", "floor"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test's)")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    parser.add_argument("--json", type=Path, help="also write every run's numbers as JSON")
    parser.add_argument(
        "--child-python",
        default=sys.executable,
        help="the Python of the tap and loop children (make bench: .venv-bench, the tap's "
        "own dependencies only, as Meltano installs it)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the fake waits this long before answering each GetMetricData request",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=JSON",
        help="override a tap setting (the floor is unchanged), e.g. --set fetch_units=false",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs SETTING=JSON, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    sizes = QUICK if args.quick else FULL
    workloads = {
        k: dataclasses.replace(w, latency=args.latency)
        for k, w in sizes.items()
        if args.workload in (k, "all")
    }
    kinds = [args.only] if args.only else ["tap", "floor"]

    version_before = tap_source_version()
    all_runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="cw-bench-") as tmp:
        for name, workload in workloads.items():
            all_runs[name] = {kind: [] for kind in kinds}
            for attempt in range(1, args.repeat + 1):
                for kind in kinds:
                    print(
                        f"[bench] workload {name} ({workload.describe()}): {kind} run "
                        f"{attempt}/{args.repeat} ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    run = run_child(kind, workload, Path(tmp), overrides, args.child_python)
                    print(
                        f"[bench]   {run['wall_s']:.2f} s wall, {run['cpu_s']:.2f} s CPU, "
                        f"{run['records']:,} records",
                        file=sys.stderr,
                        flush=True,
                    )
                    all_runs[name][kind].append(run)
    results = {
        name: {kind: median_of(runs) for kind, runs in by_kind.items()}
        for name, by_kind in all_runs.items()
    }
    versions = (version_before, tap_source_version())
    numpy_loaded = any(
        run["numpy_loaded"] for by_kind in all_runs.values() for run in by_kind.get("tap", [])
    )
    text = report(
        results, workloads, args.repeat, overrides, versions, args.child_python, numpy_loaded
    )
    print(text)
    args.output.write_text(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "workloads": {k: json.loads(w.to_json()) for k, w in workloads.items()},
                    "expected_rows": {k: w.expected_rows for k, w in workloads.items()},
                    "runs": all_runs,
                    "median": results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
