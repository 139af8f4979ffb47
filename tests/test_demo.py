"""The demo's local endpoint, through the real CLI: HTTP, env-var config, a state file."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.singer_io import bookmarks, parse_messages

ROOT = Path(__file__).resolve().parent.parent


def load_demo() -> Any:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, dt.datetime]]:
    server, url = demo.start_server()
    now = dt.datetime.now(dt.timezone.utc)
    demo.seed(url, now)
    yield url, now
    server.stop()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TAP_CLOUD"))}
    return subprocess.run(
        [sys.executable, "-m", "tap_cloudwatch_metrics", *args],
        env={
            **clean,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_reads_env_config_and_resumes_from_a_state_file(endpoint, tmp_path) -> None:
    url, now = endpoint
    env = demo.tap_environment(url, demo.demo_start(now))
    first = run_cli(env, "--config", "ENV")
    assert first.returncode == 0, first.stderr[-2000:]
    messages = parse_messages(first.stdout)
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]

    assert {r["statistic"] for r in records} == set(demo.STATISTICS)
    assert len({r["series_id"] for r in records}) == demo.series_count()
    assert {r["unit"] for r in records} == {"Percent", "Bytes", "Count"}
    keys = [(r["series_id"], r["statistic"], r["timestamp"]) for r in records]
    assert len(keys) == len(set(keys))
    assert len(bookmarks(states[-1])) == demo.series_count()

    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(states[-1]))
    second = run_cli(env, "--config", "ENV", "--state", str(state_file))
    assert second.returncode == 0, second.stderr[-2000:]
    again = [m["record"] for m in parse_messages(second.stdout) if m["type"] == "RECORD"]
    assert not {(r["series_id"], r["statistic"], r["timestamp"]) for r in again} & set(keys)


def test_standard_endpoint_variable_is_honoured(endpoint, tmp_path) -> None:
    url, now = endpoint
    env = demo.tap_environment(url, demo.demo_start(now))
    del env["TAP_CLOUDWATCH_METRICS_AWS_ENDPOINT_URL"]
    result = run_cli({**env, "AWS_ENDPOINT_URL_CLOUDWATCH": url}, "--config", "ENV")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [m["record"] for m in parse_messages(result.stdout) if m["type"] == "RECORD"]
    assert len({r["series_id"] for r in records}) == demo.series_count()


def test_the_demo_summary_and_chart_come_from_what_was_written(endpoint, tmp_path) -> None:
    """What `make demo` prints after its run: rows, series, span and files; then a PNG with a
    line per series and statistic, read back from the output file (a row written twice would
    be drawn once, a missing one leaves a gap)."""
    url, now = endpoint
    result = run_cli(demo.tap_environment(url, demo.demo_start(now)), "--config", "ENV")
    assert result.returncode == 0, result.stderr[-2000:]
    records = [m["record"] for m in parse_messages(result.stdout) if m["type"] == "RECORD"]
    output = tmp_path / "out"
    output.mkdir()
    (output / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    rows = demo.read_rows(output)
    summary = demo.summarize({output / "metrics.jsonl": rows}, {}, output, now)
    assert f"Rows written: {len(records)} ({demo.series_count()} series x Average, Maximum)" in (
        summary
    )
    assert "Time span:" in summary
    assert "metrics.jsonl" in summary

    lines = demo_chart.group_lines(rows + rows[:10])  # repeats are drawn once
    assert sum(len(panel) for panel in lines.values()) == demo.series_count() * 2
    assert sum(len(points) for panel in lines.values() for points in panel.values()) == len(rows)
    chart = demo.render_chart(rows, tmp_path / "chart.png")
    assert chart is not None
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 20_000  # drawn lines, not an empty canvas
    assert demo.render_chart([], tmp_path / "none.png") is None


demo_chart = sys.modules["demo_chart"]
