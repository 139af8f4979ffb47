"""Crash safety: a run SIGKILLed anywhere and rerun from its last STATE loses no datapoint.

Each case runs the tap's real CLI in a child process (``tests/crash_child.py``) against a
deterministic fake CloudWatch, once uninterrupted (to learn how many lines a run writes), then in
chains: kill after ``k`` lines (``k`` drawn at random over the run's output, sometimes mid-way
through line ``k + 1``, whose partial bytes are discarded as a target would), rerun from the last
STATE the target kept (or the state it already had), kill again, and finally run to the end.

What must hold over each chain: every datapoint CloudWatch has was delivered at least once, both
counting every line the target read and counting only what a target that commits at each STATE
keeps (a dead run's rows after its last STATE dropped); a primary key delivered twice carries the
same value; no STATE of any run bookmarks rows not yet written (``state_violations``); the final
STATE bookmarks every series at its last period.

The stricter count matters: a random kill rarely lands right after a STATE that is ahead of its
records, and the dead run usually wrote the skipped rows just after it. The tests at the end show
each check failing on doctored output.

Reproducing a failure: the assertion message prints the seed, the case and every kill point;
``CRASH_SEED=<seed> pytest tests/test_crash.py -k <case>`` replays the same kill points.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tap_cloudwatch_metrics.streams import MetricsStream
from tests.crash_child import (
    NOW,
    Chain,
    ChildRun,
    KillPlan,
    chain_problems,
    check_delivery,
    expected_rows,
    full_spec,
    keyed,
    kill_chain,
    record_key,
    run_child,
    tap_config,
)
from tests.fakes import bookmarks, make_fake_tap, no_network, run_sync, state_violations

SEED = int(os.environ.get("CRASH_SEED", "20260115"))
# Kills per chain; each case runs these chains (plus one uninterrupted run): 3 cases x 10 kills.
CHAINS = (5, 5)
MID_LINE_SHARE = 0.3

CASES = [
    pytest.param({"series": 240, "max_workers": 1, "statistics": ["Average"]}, id="w1-avg"),
    pytest.param(
        {"series": 240, "max_workers": 4, "statistics": ["Average", "Maximum"]},
        id="w4-avg-max",
    ),
    pytest.param(
        # Two statistics, unit lookups (kept in state), and pages of 1,000 datapoints so calls
        # are followed over NextToken.
        {
            "series": 240,
            "max_workers": 1,
            "statistics": ["Maximum", "p90"],
            "fetch_units": True,
            "page_points": 1000,
        },
        id="w1-max-p90-units-paged",
    ),
]


def kill_plans(rng: random.Random, chain_number: int, kills: int) -> list[KillPlan]:
    """Random kill points; the first chain starts with a kill before the first line and a kill
    mid-way through a line, so both are always covered, whatever the seed."""
    plans = [KillPlan.draw(rng, MID_LINE_SHARE) for _ in range(kills)]
    if chain_number == 0:
        plans[0] = KillPlan(0.0, mid_line=False)
        plans[1] = KillPlan(plans[1].fraction, mid_line=True, cut=plans[1].cut)
    return plans


@pytest.mark.parametrize("spec", CASES)
def test_sigkill_anywhere_then_rerun_from_the_last_state_loses_nothing(
    spec: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    case = request.node.callspec.id
    rng = random.Random(f"{SEED}-{case}")
    rows = expected_rows(spec)
    expected = keyed(spec, rows)

    # One uninterrupted run: every datapoint exactly once, and how many lines a row costs.
    full = run_child(spec, tmp_path / "full")
    assert full.complete, full.describe()
    once = check_delivery(expected, full.records)
    assert (once.lost, once.repeated, once.conflicting) == ([], 0, []), full.describe()
    assert len(full.states) > 10, "too few STATEs for kills to land between them"
    lines_per_row = len(full.messages) / len(full.records)

    kills = 0
    partial_lines: list[bytes] = []
    for number, count in enumerate(CHAINS):
        plans = kill_plans(rng, number, count)
        chain = kill_chain(
            spec,
            tmp_path / f"chain{number}",
            plans,
            expected=expected,
            lines_per_row=lines_per_row,
        )
        kills += chain.kills
        partial_lines += [r.discarded for r in chain.runs if r.mid_line]
        problems = chain_problems(spec, chain, rows)
        assert not problems, (
            f"CRASH_SEED={SEED} case {case} chain {number}: {chain.describe()}\n"
            + "\n".join(problems)
        )
        if number == 0:
            assert chain.runs[0].kill_after == 0
            assert chain.runs[0].messages == []
    assert kills >= sum(CHAINS) - 2, f"only {kills} kills landed (CRASH_SEED={SEED})"
    # The mid-line kills really cut a line: what was dropped is not a JSON document.
    assert partial_lines
    for partial in partial_lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(partial)


# -- the harness can fail ---------------------------------------------------------------------


SMALL = {"series": 30, "statistics": ["Average", "Maximum"]}


def _in_process_run(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch, state: dict | None = None
) -> list[dict[str, Any]]:
    """The spec's run in this process (same fake, config and STATE pace as the child's)."""
    from tests.crash_child import build_fake  # noqa: PLC0415

    spec = full_spec(spec)
    no_network(monkeypatch)
    monkeypatch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", spec["state_msg_frequency"])
    monkeypatch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", spec["state_rows_per_series"])
    tap = make_fake_tap(tap_config(spec), build_fake(spec), state, now=NOW)
    return run_sync(tap).messages


def _killed(messages: list[dict], initial: dict | None) -> ChildRun:
    return ChildRun(messages, initial, len(messages), False, -9, complete=False)


def _completed(messages: list[dict], initial: dict | None) -> ChildRun:
    return ChildRun(messages, initial, None, False, 0, complete=True)


def test_the_harness_catches_a_state_written_ahead_of_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Doctor a real run: move a STATE before the last record of a series it newly bookmarks.

    A target killed right after that STATE resumes past the moved records: the check must call
    them lost, and ``state_violations`` must flag the STATE itself. (The same chain with the
    honest messages passes, so it is the doctoring that is caught.)
    """
    messages = _in_process_run(SMALL, monkeypatch)
    rows = expected_rows(SMALL)
    expected = keyed(SMALL, rows)
    honest = [
        _killed(messages[: len(messages) // 2], None),
        _completed(_in_process_run(SMALL, monkeypatch), None),
    ]
    assert chain_problems(SMALL, Chain(honest), rows) == []

    # A STATE in the middle, a series it bookmarks that the STATE before it did not, and that
    # series' last record: the STATE goes just before that record.
    states = [i for i, m in enumerate(messages) if m["type"] == "STATE"]
    at = states[len(states) // 2]
    before = next(i for i in reversed(states) if i < at)
    newly = set(bookmarks(messages[at]["value"])) - set(bookmarks(messages[before]["value"]))
    assert newly
    last = max(
        i
        for i in range(at)
        if messages[i]["type"] == "RECORD" and messages[i]["record"]["series_id"] in newly
    )
    moved = messages[last:at]
    doctored = [*messages[:last], messages[at], *moved, *messages[at + 1 :]]
    assert state_violations(doctored, rows)

    prefix = doctored[: last + 1]  # killed right after the early STATE: ``moved`` never written
    resume = prefix[-1]["value"]
    rerun = _in_process_run(SMALL, monkeypatch, resume)
    chain = Chain([_killed(prefix, None), _completed(rerun, resume)])
    problems = chain_problems(SMALL, chain, rows)
    assert any("datapoints lost" in p for p in problems), problems
    assert any("rows not written before it" in p for p in problems), problems
    lost = check_delivery(expected, [r for run in chain.runs for r in run.records]).lost
    moved_keys = {record_key(m["record"]) for m in moved if m["type"] == "RECORD"}
    assert lost
    assert set(lost) <= moved_keys
    assert record_key(messages[last]["record"]) in lost

    # Killed later, after the moved records: every line kept covers them, so only a target that
    # commits at each STATE (and drops what followed the last one) loses them.
    later = doctored[: at + 1]
    assert later[-1]["type"] == "RECORD"
    chain = Chain([_killed(later, None), _completed(rerun, resume)])
    every_line = check_delivery(expected, [r for run in chain.runs for r in run.records])
    assert every_line.lost == []
    problems = chain_problems(SMALL, chain, rows)
    assert any("lost by a target that commits at each STATE" in p for p in problems), problems


def test_the_harness_catches_a_repeat_with_another_value_and_an_unknown_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = _in_process_run(SMALL, monkeypatch)
    rows = expected_rows(SMALL)
    first = next(m for m in messages if m["type"] == "RECORD")
    changed = json.loads(json.dumps(first))
    changed["record"]["value"] += 1.0
    unknown = json.loads(json.dumps(first))
    unknown["record"]["statistic"] = "Sum"
    runs = [_killed([changed, unknown], None), _completed(messages, None)]
    problems = chain_problems(SMALL, Chain(runs), rows)
    assert len(problems) == 2, problems
    assert sum("CloudWatch has no such datapoint" in p for p in problems) == 1
    delivery = check_delivery(keyed(SMALL, rows), [r for run in runs for r in run.records])
    assert delivery.lost == []
    assert delivery.repeated == 1
    assert len(delivery.conflicting) == 2


def test_the_harness_catches_an_incomplete_final_state(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = _in_process_run(SMALL, monkeypatch)
    rows = expected_rows(SMALL)
    final = json.loads(json.dumps(messages[-1]))
    assert final["type"] == "STATE"
    final["value"]["bookmarks"]["metrics"]["partitions"].pop()
    problems = chain_problems(SMALL, Chain([_completed([*messages[:-1], final], None)]), rows)
    assert len(problems) == 1, problems
    assert "1 series not bookmarked at their last period" in problems[0]
