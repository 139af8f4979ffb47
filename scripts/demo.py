"""End-to-end demo: a local CloudWatch (moto), sample EC2 metrics, and a Meltano run.

``make demo`` runs this after installing the project and the Meltano plugins. It

1. starts moto's CloudWatch on 127.0.0.1 and a free port (no AWS account needed),
2. seeds namespace ``AWS/EC2`` with the last 3 hours of 1-minute data for three instances,
3. runs ``meltano run tap-cloudwatch-metrics target-jsonl`` against it, the tap configured only
   through ``TAP_CLOUDWATCH_METRICS_*`` variables (meltano.yml stays a template for real use),
4. stops the server and says how many rows were written, the series and time span, and where,
5. draws every series read back from the output file into ``output/demo/metrics.png``.

The demo keeps its own Meltano state (state id suffix ``demo``) and output folder
(``output/demo``), so it never resumes from, or writes into, a real run's state or files. A second
run resumes from the first one's state and emits only the periods that closed since.

``python scripts/demo.py --no-meltano`` only starts and seeds the server, prints the endpoint and
the variables to use by hand, and serves until Ctrl-C.

``start_server()`` and ``seed()`` are importable (e.g. by tests) and have no other side effects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_chart import read_rows, render_chart

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "AWS/EC2"
REGION = "us-east-1"
DUMMY_KEY = "testing"
SEED_HOURS = 3
RANDOM_SEED = 20240601
PERIOD = 300
DELAY = 300  # the tap's default delay_seconds
STATISTICS = ("Average", "Maximum")
AUTO_SCALING_GROUP = "web-asg"
# InstanceId -> (baseline CPU %, NetworkIn bytes per minute at 50% CPU)
INSTANCES = {
    "i-0a1b2c3d4e5f60001": (22.0, 18_000_000),
    "i-0a1b2c3d4e5f60002": (35.0, 26_000_000),
    "i-0a1b2c3d4e5f60003": (12.0, 9_000_000),
}
MAX_METRIC_DATA_PER_CALL = 1000
STATE_ID_SUFFIX = "demo"
OUTPUT_DIR = PROJECT_ROOT / "output" / "demo"
TIMESTAMP_FIELDS = ("timestamp", "period_start", "time", "ts")
CHART_NAME = "metrics.png"


# ---------------------------------------------------------------- server and sample data


def start_server(host: str = "127.0.0.1", port: int = 0) -> tuple[Any, str]:
    """Start moto's server in a thread on ``host`` (a free port by default).

    Returns the server (call ``.stop()``) and its endpoint URL.
    """
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 (moto is only needed here)

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"


def cloudwatch_client(endpoint_url: str, region: str = REGION) -> Any:
    """A CloudWatch client for the local endpoint, with dummy keys and no profile."""
    import boto3  # noqa: PLC0415

    session = boto3.session.Session(
        aws_access_key_id=DUMMY_KEY,
        aws_secret_access_key=DUMMY_KEY,
        region_name=region,
    )
    return session.client("cloudwatch", endpoint_url=endpoint_url)


def _minutes(now: dt.datetime, hours: int) -> list[dt.datetime]:
    """Minute timestamps of the last ``hours`` before ``now`` (oldest first, ``now`` excluded)."""
    end = now.astimezone(dt.timezone.utc).replace(second=0, microsecond=0)
    count = hours * 60
    return [end - dt.timedelta(minutes=count - i) for i in range(count)]


def _cpu(ts: dt.datetime, baseline: float, rng: random.Random) -> float:
    """CPU %: a daily curve (peak mid-afternoon UTC), a 40-minute batch job, noise, rare spikes."""
    hour = ts.hour + ts.minute / 60
    daily = 0.45 * baseline * math.sin(2 * math.pi * (hour - 9) / 24)
    batch = 8.0 if (ts.hour * 60 + ts.minute) % 40 < 6 else 0.0
    spike = rng.uniform(20, 45) if rng.random() < 0.01 else 0.0
    value = baseline + daily + batch + spike + rng.gauss(0, 2.5)
    return round(min(100.0, max(0.0, value)), 4)


def sample_metric_data(now: dt.datetime, hours: int = SEED_HOURS) -> list[dict[str, Any]]:
    """The ``MetricData`` entries the demo puts, deterministic for a given ``now``.

    Per instance (dimension ``InstanceId``): CPUUtilization (Percent) and NetworkIn (Bytes).
    Per instance within its Auto Scaling group (dimensions ``AutoScalingGroupName`` and
    ``InstanceId``): DiskReadOps (Count). AWS/EC2 itself publishes single-dimension series; this
    two-dimension one is there to show multi-dimension series. Plus the group-level
    CPUUtilization (dimension ``AutoScalingGroupName``), the mean of its instances, as EC2 does.
    Dimensions are listed in name order.
    """
    data: list[dict[str, Any]] = []
    minutes = _minutes(now, hours)
    group_cpu: dict[dt.datetime, list[float]] = {ts: [] for ts in minutes}
    for instance_id, (cpu_baseline, bytes_at_half) in INSTANCES.items():
        by_instance = [{"Name": "InstanceId", "Value": instance_id}]
        in_group = [
            {"Name": "AutoScalingGroupName", "Value": AUTO_SCALING_GROUP},
            {"Name": "InstanceId", "Value": instance_id},
        ]
        for ts in minutes:
            # Seeded per instance and minute: a minute has the same values in every demo run.
            rng = random.Random(f"{RANDOM_SEED}:{instance_id}:{ts.isoformat()}")
            cpu = _cpu(ts, cpu_baseline, rng)
            group_cpu[ts].append(cpu)
            network = bytes_at_half * (0.3 + cpu / 50) * rng.lognormvariate(0, 0.15)
            disk_ops = max(0, round(rng.gauss(40 + 3 * cpu, 15)))
            data += [
                _datum("CPUUtilization", by_instance, ts, cpu, "Percent"),
                _datum("NetworkIn", by_instance, ts, float(round(network)), "Bytes"),
                _datum("DiskReadOps", in_group, ts, float(disk_ops), "Count"),
            ]
    by_group = [{"Name": "AutoScalingGroupName", "Value": AUTO_SCALING_GROUP}]
    for ts, values in group_cpu.items():
        mean = round(sum(values) / len(values), 4)
        data.append(_datum("CPUUtilization", by_group, ts, mean, "Percent"))
    return data


def _datum(
    name: str, dimensions: list[dict[str, str]], ts: dt.datetime, value: float, unit: str
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": ts,
        "Value": value,
        "Unit": unit,
    }


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed(
    endpoint_url: str,
    now: dt.datetime,
    *,
    hours: int = SEED_HOURS,
    namespace: str = NAMESPACE,
    region: str = REGION,
) -> int:
    """Put the sample data (see :func:`sample_metric_data`) into the CloudWatch at ``endpoint_url``.

    Returns the number of datapoints put.
    """
    client = cloudwatch_client(endpoint_url, region)
    data = sample_metric_data(now, hours)
    for chunk in _chunks(data, MAX_METRIC_DATA_PER_CALL):
        client.put_metric_data(Namespace=namespace, MetricData=list(chunk))
    return len(data)


def series_count() -> int:
    """How many series :func:`seed` creates."""
    return 3 * len(INSTANCES) + 1


# ---------------------------------------------------------------- running Meltano


def _align(moment: dt.datetime, period: int) -> dt.datetime:
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % period, tz=dt.timezone.utc)


def demo_start(now: dt.datetime) -> dt.datetime:
    """The tap's start_date: the first period boundary with a full period of seeded data."""
    first_minute = _minutes(now, SEED_HOURS)[0]
    return _align(first_minute + dt.timedelta(seconds=PERIOD - 1), PERIOD)


def tap_environment(endpoint_url: str, start: dt.datetime) -> dict[str, str]:
    """The ``TAP_CLOUDWATCH_METRICS_*`` settings of the demo run."""
    prefix = "TAP_CLOUDWATCH_METRICS_"
    return {
        f"{prefix}AWS_ENDPOINT_URL": endpoint_url,
        f"{prefix}REGION": REGION,
        f"{prefix}AWS_ACCESS_KEY_ID": DUMMY_KEY,
        f"{prefix}AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        f"{prefix}CLOUDWATCH_METRICS_NAMESPACE": NAMESPACE,
        f"{prefix}STATISTICS": json.dumps(list(STATISTICS)),
        f"{prefix}PERIOD": str(PERIOD),
        f"{prefix}START_DATE": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def subprocess_environment(tap_env: dict[str, str], output_dir: Path) -> dict[str, str]:
    """The caller's environment without its AWS, tap and Meltano run settings, plus the demo's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("AWS_ENDPOINT_URL", "TAP_CLOUDWATCH_METRICS_", "TARGET_JSONL_", "MELTANO_RUN_")
        )
        and key
        not in {
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "MELTANO_ENVIRONMENT",
        }
    }
    # The user's ~/.aws files must not change the demo (a profile's endpoint, role or region).
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["TARGET_JSONL_DESTINATION_PATH"] = str(output_dir)
    env["TARGET_JSONL_DO_TIMESTAMP_FILE"] = "false"
    env.update(tap_env)
    return env


def meltano_executable() -> str | None:
    """Meltano next to this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "meltano"
    if beside.exists():
        return str(beside)
    return shutil.which("meltano")


def _line_counts(folder: Path) -> dict[Path, int]:
    counts = {}
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb") as handle:
            counts[path] = sum(1 for _ in handle)
    return counts


def _new_rows(folder: Path, before: dict[Path, int]) -> dict[Path, list[dict[str, Any]]]:
    """Rows appended to (or files created in) ``folder`` since ``before`` was taken."""
    found = {}
    for path in sorted(folder.glob("*.jsonl")):
        skip = before.get(path, 0)
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for index, line in enumerate(handle) if index >= skip]
        if rows:
            found[path] = rows
    return found


def _series_key(row: dict[str, Any]) -> str:
    if "series_id" in row:
        return str(row["series_id"])
    identity = {k: row.get(k) for k in ("region", "namespace", "metric_name", "dimensions")}
    return json.dumps(identity, sort_keys=True, default=str)


def _timestamp(row: dict[str, Any]) -> str | None:
    for name in TIMESTAMP_FIELDS:
        if row.get(name) is not None:
            return str(row[name])
    return None


def summarize(
    new_rows: dict[Path, list[dict[str, Any]]],
    totals: dict[Path, int],
    output_dir: Path,
    now: dt.datetime,
) -> str:
    """A few lines on what this run wrote."""
    rows = [row for file_rows in new_rows.values() for row in file_rows]
    if not rows:
        kept = [f"{_relative(path)} ({count} rows)" for path, count in totals.items() if count]
        next_due = _align(now - dt.timedelta(seconds=DELAY), PERIOD) + dt.timedelta(
            seconds=PERIOD + DELAY
        )
        return (
            "Rows written: 0 (not an error). Earlier demo runs already extracted every period\n"
            f"that is complete: a {PERIOD} s period is emitted {DELAY} s after it closes\n"
            f"(delay_seconds). Next new period: from {next_due:%H:%M:%S} UTC. `make demo-reset`\n"
            f"forgets the demo's state (Meltano state id suffix '{STATE_ID_SUFFIX}').\n"
            f"Output:       {', '.join(kept) or _relative(output_dir) + '/ (empty)'}"
        )
    stamps = sorted(ts for ts in map(_timestamp, rows) if ts)
    statistics = sorted({str(row["statistic"]) for row in rows if row.get("statistic")})
    lines = [
        f"Rows written: {len(rows)} "
        f"({len({_series_key(row) for row in rows})} series"
        + (f" x {', '.join(statistics)}" if statistics else "")
        + ")",
    ]
    if stamps:
        lines.append(f"Time span:    {stamps[0]} .. {stamps[-1]} (period starts, {PERIOD} s)")
    for path, file_rows in new_rows.items():
        lines.append(
            f"Output:       {_relative(path)} (+{len(file_rows)} rows, "
            f"{totals.get(path, len(file_rows))} in all)"
        )
    lines.append(f"First row:    {json.dumps(rows[0], sort_keys=True)}")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_meltano(meltano: str, endpoint_url: str, now: dt.datetime, output_dir: Path) -> int:
    """Run the demo pipeline; stream Meltano's output; print the summary. Returns an exit code."""
    start = demo_start(now)
    env = subprocess_environment(tap_environment(endpoint_url, start), output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    before = _line_counts(output_dir)
    command = [
        meltano,
        "run",
        "--state-id-suffix",
        STATE_ID_SUFFIX,
        "tap-cloudwatch-metrics",
        "target-jsonl",
    ]
    print("$ meltano " + " ".join(command[1:]), flush=True)
    started = time.monotonic()
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        print(
            f"\nerror: `meltano run` failed with exit code {result.returncode} after "
            f"{elapsed:.1f} s; its log is above.\n"
            "If a plugin is missing, run `make demo` (or `meltano install`) first.",
            file=sys.stderr,
        )
        return result.returncode
    print(f"\nmeltano run finished in {elapsed:.1f} s.\n")
    totals = _line_counts(output_dir)
    finished = dt.datetime.now(dt.timezone.utc)
    print(summarize(_new_rows(output_dir, before), totals, output_dir, finished))
    chart = render_chart(read_rows(output_dir), output_dir / CHART_NAME)
    if chart is not None:
        print(
            f"Chart:        {_relative(chart)} (every row of {_relative(output_dir)}, per series)"
        )
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_forever(endpoint_url: str, now: dt.datetime) -> None:
    """Print how to use the seeded server by hand, then wait for Ctrl-C."""
    start = demo_start(now)
    print("\nSet these to run the tap against it (e.g. `meltano run tap-cloudwatch-metrics")
    print("target-jsonl` or `tap-cloudwatch-metrics --config ENV`):\n")
    for key, value in tap_environment(endpoint_url, start).items():
        print(f"export {key}='{value}'")
    print("\nPress Ctrl-C to stop the server.", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-meltano",
        action="store_true",
        help="only start and seed the local CloudWatch, print its settings, serve until Ctrl-C",
    )
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=OUTPUT_DIR,
        help="target-jsonl destination (default: output/demo)",
    )
    args = parser.parse_args(argv)

    # werkzeug logs one line per request; keep Meltano's output readable unless serving by hand.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.no_meltano else logging.ERROR)
    if args.no_meltano:
        logging.basicConfig(level=logging.INFO, format="%(message)s")

    meltano = meltano_executable()
    if meltano is None and not args.no_meltano:
        print(
            "error: meltano is not installed. Run `make demo` (it installs the project with\n"
            "its 'demo' extra and the Meltano plugins), or `pip install -e '.[dev,demo]'`\n"
            "followed by `meltano install tap-cloudwatch-metrics target-jsonl`.",
            file=sys.stderr,
        )
        return 2
    now = dt.datetime.now(dt.timezone.utc)
    server, endpoint_url = start_server(port=args.port)
    try:
        print(f"Local CloudWatch (moto) listening on {endpoint_url}")
        started = time.monotonic()
        points = seed(endpoint_url, now)
        print(
            f"Seeded {points} datapoints in {NAMESPACE} ({series_count()} series, 1-minute data "
            f"for the last {SEED_HOURS} hours) in {time.monotonic() - started:.1f} s.",
            flush=True,
        )
        if args.no_meltano or meltano is None:
            serve_forever(endpoint_url, now)
            return 0
        return run_meltano(meltano, endpoint_url, now, args.output_dir.resolve())
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130
    finally:
        server.stop()
        print("Local CloudWatch stopped.")


if __name__ == "__main__":
    sys.exit(main())
