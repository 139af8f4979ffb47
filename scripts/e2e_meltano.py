"""Meltano end to end, as CI runs it (``make e2e``): the installed plugins against a local endpoint.

1. Starts the demo's local CloudWatch (moto on loopback) and seeds three hours of data.
2. ``meltano run tap-cloudwatch-metrics target-jsonl`` up to an ``end_date`` an hour before
   the data ends, then again without it: the second run resumes from Meltano's stored state.
   Checked: no key twice, every series continues right after its bookmark, nothing missing.
3. The same into DuckDB (target-duckdb): rows and keys as sent.
4. Into PostgreSQL (meltanolabs-target-postgres), the table created first with
   ``warehouse/postgres.sql``: column types (timestamptz, double precision, jsonb), then a rerun
   with ``lookback`` that re-reads periods: upserted, no duplicate key.

Exits non-zero on the first failed check, saying which. Postgres comes from ``E2E_PG_HOST``,
``E2E_PG_PORT``, ``E2E_PG_USER``, ``E2E_PG_PASSWORD`` and ``E2E_PG_DATABASE`` (defaults:
localhost, 5432, postgres, postgres, e2e); ``--no-postgres`` skips step 4.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo  # the demo's server, data and environment

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "output" / "e2e"
SCHEMA = "cloudwatch_e2e"
KEY = ("series_id", "statistic", "period", "timestamp")
EXPECTED_TYPES = {"timestamp": "timestamp with time zone", "value": "double precision"}
EXPECTED_TYPES["dimensions"] = "jsonb"
RECORD_COUNT = re.compile(r'"metric": ?"record_count", ?"value": ?(\d+)')


class CheckFailedError(AssertionError):
    """One end-to-end expectation did not hold."""


def check(condition: bool, what: str) -> None:
    """Stop with ``what`` unless ``condition``; say it when it holds."""
    if not condition:
        raise CheckFailedError(what)
    print(f"  ok: {what}", flush=True)


def key_of(row: dict[str, Any]) -> tuple[Any, ...]:
    stamp = dt.datetime.fromisoformat(str(row["timestamp"]).replace("Z", "+00:00"))
    return (row["series_id"], row["statistic"], int(row["period"]), stamp.timestamp())


class Meltano:
    """``meltano run`` with the demo's environment and a state id of this e2e run only."""

    def __init__(self, executable: str, base_env: dict[str, str]) -> None:
        self.executable = executable
        self.base_env = base_env
        self.run_id = uuid.uuid4().hex[:8]  # state ids of this e2e run only
        self.suffixes: list[str] = []

    def run(self, target: str, suffix: str, **settings: str) -> str:
        """Run the pipeline; return its output (the tap's record counts are parsed from it)."""
        full = f"e2e-{self.run_id}-{suffix}"
        if full not in self.suffixes:
            self.suffixes.append(full)
        env = {**self.base_env, **settings}
        command = [
            self.executable,
            "run",
            "--state-id-suffix",
            full,
            "tap-cloudwatch-metrics",
            target,
        ]
        print(f"$ meltano {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            print(output[-6000:], file=sys.stderr)
            msg = f"meltano run ... {target} exited {result.returncode}"
            raise CheckFailedError(msg)
        print(f"  ({time.monotonic() - started:.1f} s)", flush=True)
        return output

    def state(self, target: str, suffix: str) -> dict[str, Any]:
        state_id = f"dev:tap-cloudwatch-metrics-to-{target}:e2e-{self.run_id}-{suffix}"
        result = subprocess.run(
            [self.executable, "state", "get", state_id],
            cwd=ROOT,
            env=self.base_env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(result.stdout)

    def forget(self) -> None:
        for target in ("target-jsonl", "target-duckdb", "target-postgres"):
            for suffix in self.suffixes:  # full suffixes, as stored
                subprocess.run(
                    [
                        self.executable,
                        "state",
                        "clear",
                        "--force",
                        f"dev:tap-cloudwatch-metrics-to-{target}:{suffix}",
                    ],
                    cwd=ROOT,
                    env=self.base_env,
                    capture_output=True,
                    check=False,
                )


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def tap_records(output: str) -> int:
    """Records the tap reported (its record_count metric) in a meltano run's output."""
    return sum(int(n) for n in RECORD_COUNT.findall(output))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def jsonl_resume(meltano: Meltano, now: dt.datetime, start: dt.datetime, end: dt.datetime) -> int:
    """Two runs into JSONL, the second resuming from Meltano's state. Returns rows expected."""
    print("\n== target-jsonl: a bounded run, then a run resumed from Meltano's state")
    cut = demo._align(now - dt.timedelta(minutes=70), demo.PERIOD)
    meltano.run("target-jsonl", "jsonl", TAP_CLOUDWATCH_METRICS_END_DATE=_iso(cut))
    first = read_jsonl(OUTPUT / "metrics.jsonl")
    check(bool(first), f"first run wrote rows ({len(first)})")
    check(
        max(key_of(r)[3] for r in first) < cut.timestamp(),
        "first run stopped before its end_date",
    )
    state = meltano.state("target-jsonl", "jsonl")
    partitions = state["singer_state"]["bookmarks"]["metrics"]["partitions"]
    check(
        len(partitions) == demo.series_count(),
        f"Meltano stored a bookmark per series ({len(partitions)})",
    )

    meltano.run("target-jsonl", "jsonl", TAP_CLOUDWATCH_METRICS_END_DATE=_iso(end))
    rows = read_jsonl(OUTPUT / "metrics.jsonl")
    second = rows[len(first) :]
    check(bool(second), f"the resumed run wrote the newer rows ({len(second)})")
    keys = [key_of(r) for r in rows]
    check(len(keys) == len(set(keys)), "no key was written twice across the two runs")
    last_of_first: dict[tuple[str, str], float] = {}
    for row in first:
        line = (row["series_id"], row["statistic"])
        last_of_first[line] = max(last_of_first.get(line, 0.0), key_of(row)[3])
    first_of_second: dict[tuple[str, str], float] = {}
    for row in second:
        line = (row["series_id"], row["statistic"])
        first_of_second[line] = min(first_of_second.get(line, float("inf")), key_of(row)[3])
    check(
        first_of_second.keys() == last_of_first.keys()
        and all(first_of_second[k] == last_of_first[k] + demo.PERIOD for k in last_of_first),
        "each series resumes with the period right after its bookmark",
    )
    periods = {key_of(r)[3] for r in rows}
    expected = demo.series_count() * len(demo.STATISTICS) * len(periods)
    check(len(rows) == expected, f"every series has every period ({len(rows)} of {expected})")
    check(
        min(periods) == start.timestamp(),
        "the first period is the configured start_date",
    )
    return len(rows)


def duckdb_load(meltano: Meltano, expected_rows: int) -> None:
    print("\n== target-duckdb")
    database = OUTPUT / "warehouse.duckdb"
    meltano.run(
        "target-duckdb",
        "duckdb",
        TARGET_DUCKDB_FILEPATH=str(database),
        TARGET_DUCKDB_DEFAULT_TARGET_SCHEMA=SCHEMA,
    )
    python = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
    query = (
        "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        f"t = '{SCHEMA}.metrics'; "
        "n, k = c.execute(f'select count(*), count(distinct (series_id, statistic, period, "
        '"timestamp")) from {t}\').fetchone(); '
        "print(json.dumps([n, k]))"
    )
    result = subprocess.run(
        [str(python), "-c", query, str(database)], capture_output=True, text=True, check=True
    )
    rows, keys = json.loads(result.stdout)
    check(rows == expected_rows, f"DuckDB holds every row ({rows} of {expected_rows})")
    check(rows == keys, "DuckDB: no duplicate key")


class Postgres:
    """psql against the e2e database."""

    def __init__(self) -> None:
        self.host = os.environ.get("E2E_PG_HOST", "localhost")
        self.port = os.environ.get("E2E_PG_PORT", "5432")
        self.user = os.environ.get("E2E_PG_USER", "postgres")
        self.password = os.environ.get("E2E_PG_PASSWORD", "postgres")
        self.database = os.environ.get("E2E_PG_DATABASE", "e2e")

    def target_env(self) -> dict[str, str]:
        return {
            "TARGET_POSTGRES_HOST": self.host,
            "TARGET_POSTGRES_PORT": self.port,
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": self.password,
            "TARGET_POSTGRES_DATABASE": self.database,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
        }

    def psql(self, *args: str) -> str:
        command = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            self.host,
            "-p",
            self.port,
            "-U",
            self.user,
            self.database,
            *args,
        ]
        env = {**os.environ, "PGPASSWORD": self.password}
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout

    def scalar_row(self, sql: str) -> list[str]:
        return self.psql("-c", sql).strip().split("|")


def postgres_load(meltano: Meltano, expected_rows: int) -> None:
    print("\n== target-postgres")
    pg = Postgres()
    pg.psql("-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    pg.psql("-v", f"schema={SCHEMA}", "-f", str(ROOT / "warehouse" / "postgres.sql"))
    meltano.run("target-postgres", "postgres", **pg.target_env())
    types = dict(
        line.split("|")
        for line in pg.psql(
            "-c",
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{SCHEMA}' AND table_name = 'metrics'",
        ).splitlines()
    )
    for column, wanted in EXPECTED_TYPES.items():
        check(types.get(column) == wanted, f"column {column} is {wanted} (got {types.get(column)})")
    count_sql = (
        'SELECT count(*), count(DISTINCT (series_id, statistic, period, "timestamp")) '
        f"FROM {SCHEMA}.metrics"
    )
    rows, keys = map(int, pg.scalar_row(count_sql))
    check(rows == expected_rows, f"PostgreSQL holds every row ({rows} of {expected_rows})")
    check(rows == keys, "PostgreSQL: no duplicate key")
    zone = pg.scalar_row(
        f'SELECT count(*) FROM {SCHEMA}.metrics WHERE extract(second FROM "timestamp") <> 0 '
        f'OR extract(minute FROM "timestamp")::int % {demo.PERIOD // 60} <> 0'
    )
    check(zone == ["0"], "every timestamp is a period start")
    json_ok = pg.scalar_row(
        f"SELECT count(*) FROM {SCHEMA}.metrics WHERE jsonb_typeof(dimensions) <> 'object'"
    )
    check(json_ok == ["0"], "dimensions are JSON objects")

    output = meltano.run(
        "target-postgres", "postgres", TAP_CLOUDWATCH_METRICS_LOOKBACK="3", **pg.target_env()
    )
    reread = tap_records(output)
    check(reread > 0, f"the lookback run re-read {reread} rows")
    rows_after, keys_after = map(int, pg.scalar_row(count_sql))
    check(rows_after == keys_after, "after the lookback re-read: no duplicate key (upserted)")
    check(rows_after >= rows, f"after the lookback re-read: nothing lost ({rows_after} rows)")
    pg.psql("-c", f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-postgres", action="store_true", help="skip target-postgres")
    args = parser.parse_args(argv)
    executable = demo.meltano_executable()
    if executable is None:
        print("error: meltano is not installed (make e2e installs it)", file=sys.stderr)
        return 2
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    server, url = demo.start_server()
    meltano = None
    try:
        now = dt.datetime.now(dt.timezone.utc)
        demo.seed(url, now)
        start = demo.demo_start(now)
        env = demo.subprocess_environment(demo.tap_environment(url, start), OUTPUT)
        # Every run ends at the same closed period, however long the runs take.
        end = demo._align(now - dt.timedelta(seconds=demo.DELAY), demo.PERIOD)
        env["TAP_CLOUDWATCH_METRICS_END_DATE"] = _iso(end)
        meltano = Meltano(executable, env)
        rows = jsonl_resume(meltano, now, start, end)
        duckdb_load(meltano, rows)
        if not args.no_postgres:
            postgres_load(meltano, rows)
    except (CheckFailedError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"\nE2E FAILED: {exc}\n{detail[-3000:]}", file=sys.stderr)
        return 1
    finally:
        if meltano is not None:
            meltano.forget()
        server.stop()
    print("\nE2E passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
