"""The benchmark (benchmarks/run.py) still runs, and its numbers agree with each other.

One ``--quick`` run (tiny workloads, a few seconds) of the real command, then checks that the
tap and the floor fetched the same rows, that the API counts add up, and that the derived
numbers (rates, per-row CPU, the fake's share) are computed from the measured ones.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import DEFAULT_DELAY_SECONDS, QUICK
from benchmarks.run import OutputCounter, median_of
from tap_cloudwatch_metrics.settings import DEFAULT_DELAY_SECONDS as TAP_DEFAULT_DELAY

ROOT = Path(__file__).resolve().parent.parent
MAX_QUERIES = 500


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    tmp = tmp_path_factory.mktemp("bench")
    output, data = tmp / "results.md", tmp / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--output",
            str(output),
            "--json",
            str(data),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(data.read_text()), output.read_text()


def test_benchmark_window_uses_the_taps_default_delay() -> None:
    assert DEFAULT_DELAY_SECONDS == TAP_DEFAULT_DELAY


def test_both_runs_fetch_every_row(quick: tuple[dict, str]) -> None:
    data, _ = quick
    assert set(data["median"]) == {"a", "b"}
    for name, by_kind in data["median"].items():
        expected = QUICK[name].expected_rows
        assert data["expected_rows"][name] == expected
        assert by_kind["tap"]["records"] == expected, name
        assert by_kind["floor"]["records"] == expected, name
        assert by_kind["floor"]["lines"] == expected
        assert by_kind["floor"]["states"] == 0
        tap = by_kind["tap"]
        assert tap["lines"] == tap["records"] + tap["schemas"] + tap["states"]
        assert tap["states"] >= 1
        assert 0 < tap["last_state_bytes"] <= tap["state_bytes"]
        assert tap["bookmarked_series"] == QUICK[name].series


def test_api_counts_add_up(quick: tuple[dict, str]) -> None:
    data, _ = quick
    for name, by_kind in data["median"].items():
        workload = QUICK[name]
        for kind, run in by_kind.items():
            where = f"{name}/{kind}"
            assert run["refused_requests"] == 0, where
            assert run["list_metrics_calls"] == math.ceil(workload.series / 500), where
            assert run["get_metric_data_calls"] >= 1, where
            assert 0 < run["max_queries_per_call"] <= MAX_QUERIES, where
            assert run["min_billed"] == workload.series * len(workload.statistics)
            assert run["billed_metric_requests"] >= run["min_billed"], where
            assert (
                run["billed_metric_requests"]
                <= run["get_metric_data_calls"] * run["max_queries_per_call"]
            ), where
            assert run["datapoints_returned"] >= run["records"], where
            # the fake keeps a request's datapoints in a cursor only while it pages
            assert (run["fake_peak_cursor_mb"] > 0) == (run["continuation_pages"] > 0), where
            calls = (
                run["get_metric_data_calls"]
                + run["list_metrics_calls"]
                + run["get_metric_statistics_calls"]
            )
            assert run["fake_handler_calls"] == calls, where
        floor = by_kind["floor"]
        # The floor: 500 queries a call, every continuation page followed and billed again.
        assert floor["get_metric_statistics_calls"] == 0
        first_calls = math.ceil(workload.min_billed / MAX_QUERIES)
        assert floor["get_metric_data_calls"] == first_calls + floor["continuation_pages"]


def test_derived_numbers_follow_from_measured_ones(quick: tuple[dict, str]) -> None:
    data, text = quick
    for name, by_kind in data["median"].items():
        for kind, run in by_kind.items():
            where = f"{name}/{kind}"
            assert run["wall_s"] > 0, where
            assert run["parent_cpu_s"] >= 0 and run["other_cpu_s"] >= 0, where
            assert run["cpu_s"] == pytest.approx(run["user_s"] + run["sys_s"])
            assert run["cpu_per_1k_rows"] == pytest.approx(run["cpu_s"] / run["records"] * 1000)
            assert run["records_per_s"] == pytest.approx(run["records"] / run["wall_s"])
            assert 0 < run["fake_handler_cpu_s"] <= run["fake_cpu_s"] < run["cpu_s"], where
            assert run["cpu_net_of_fake_s"] == pytest.approx(run["cpu_s"] - run["fake_cpu_s"])
            assert run["fake_share"] == pytest.approx(run["fake_cpu_s"] / run["cpu_s"])
            # wait4's peak RSS is the child's whole life; the child saw its own after setup.
            assert run["peak_rss_mb"] >= run["rss_after_setup_mb"] > 0, where
            assert run["setup_wall_s"] + run["run_wall_s"] <= run["wall_s"], where
            # one run each: the median is that run
            assert data["runs"][name][kind] == [run]
        assert f"| {name} | tap |" in text
        assert f"| {name} | floor |" in text
    assert text.count("tap wall / floor wall") == 2
    assert "singer-sdk" in text
    assert "- tap code: git " in text


def test_median_and_output_counter() -> None:
    runs = [{"x": 3.0, "n": 10}, {"x": 1.0, "n": 30}, {"x": 2.0, "n": 20}]
    assert median_of(runs) == {"x": 2.0, "n": 20}

    state = b'{"type":"STATE","value":{"bookmarks":{"metrics":{"partitions":['
    state += b'{"context":{"series_id":"s1"},"replication_key_value":"2026-01-15T11:50:00+00:00"},'
    state += b'{"context":{"series_id":"s2"}}]}}}}'
    lines = [b'{"type":"SCHEMA","stream":"metrics"}']
    lines += [b'{"type":"RECORD","record":{"v":%d}}' % i for i in range(50)]
    lines += [b'{"type":"STATE","value":{}}', state]
    stream = b"\n".join(lines) + b"\n"
    for size in (1, 7, 64, len(stream)):
        counter = OutputCounter()
        for at in range(0, len(stream), size):
            counter.feed(stream[at : at + size])
        counter.close()
        assert (counter.lines, counter.records, counter.schemas) == (53, 50, 1), size
        assert counter.states == 2
        assert counter.state_bytes == len(lines[-2]) + len(state)
        assert counter.last_state == state
        assert counter.bookmarked_series() == 1
        assert counter.bytes == len(stream)
