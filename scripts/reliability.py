"""Fault-injection campaign: what reaches a target when CloudWatch or the process misbehaves.

    .venv/bin/python scripts/reliability.py [--runs N] [--seed S] [--quick]

Every row injects one kind of fault, many times at random positions (seeded), into runs of the
tap against the in-memory CloudWatch of ``tests/fakes.py``, and counts, against every datapoint
the fake holds for the window:

* delivered: distinct datapoints that reached the target (over a run and its reruns);
* lost: datapoints never delivered (expected - delivered);
* repeated: deliveries of a primary key beyond its first, with the same value (harmless to an
  upserting target; a rerun from a STATE written mid-series repeats that series' rows);
* conflicting: a primary key delivered with a value other than CloudWatch's, or a key
  CloudWatch does not have.

Rows:

* SIGKILL: the tap's real CLI in a child process (``tests/crash_child.py``), killed after a
  random number of lines (sometimes mid-line), rerun from the last STATE the target kept,
  killed again, then run to the end.
* Bursts of throttling (``Throttling`` 400, ``TooManyRequestsException`` 429), of HTTP 500/503,
  and of transport faults (connection reset, read timeout) shorter than the retry limit: the
  run must complete on its own.
* Throttling that outlasts the retries, and a query answered ``InternalError``: the run fails;
  the rerun from the last STATE it wrote must complete the data.
* ``PartialData`` on the last page (a query cut short, or answered empty): the run completes
  with that series' bookmark held back; the next run must fetch the rest.

Every run's STATE messages are also checked against the records written before them
(``tests.fakes.state_violations``), and loss is counted a second time for a stricter target, one
that keeps a dead run's rows only up to its last STATE (``committed_records``): there a STATE
ahead of its records loses data even when the dead run wrote the skipped rows after it. The exit
status is non-zero when anything is lost (either way) or conflicting, a STATE is ahead of its
records, or a run fails where the retries should have absorbed the fault.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _pytest.monkeypatch import MonkeyPatch

from tap_cloudwatch_metrics.streams import MetricsStream
from tests.crash_child import (
    ChildFailedError,
    KillPlan,
    PeriodKey,
    check_delivery,
    committed_records,
    decode_line,
    expected_rows,
    final_state_problems,
    full_spec,
    keyed,
    kill_chain,
    states_ahead,
    tap_config,
)
from tests.crash_child import build_fake as build_spec_fake
from tests.fakes import (
    FakeCloudWatch,
    Row,
    SyncOutput,
    capture_sync,
    fast_retries,
    make_fake_tap,
    no_network,
    state_violations,
)

HEADER = (
    "| fault injected | runs | datapoints expected | datapoints delivered | lost "
    "| repeated (same key, same value) | conflicting (same key, different value) |"
)
# Reruns after a failed run before the scenario gives up (what is missing then counts lost).
MAX_RERUNS = 3

# Datasets the in-process rows draw from: several GetMetricData calls (500 queries each), some
# fetched one at a time and some concurrently, with continuation pages, so that a fault lands on
# a first page, a NextToken page, or a later call once earlier calls' rows are out.
DATASETS: tuple[dict[str, Any], ...] = (
    {"series": 240, "statistics": ["Average"], "page_points": 700, "max_workers": 1},
    {
        "series": 520,
        "statistics": ["Average", "Maximum"],
        "span": 1800,
        "page_points": 1500,
        "max_workers": 4,
    },
    {"series": 1010, "statistics": ["Sum"], "span": 1800, "page_points": 1000, "max_workers": 1},
    {"series": 700, "statistics": ["Average"], "span": 1200, "page_points": 800, "max_workers": 2},
    {
        "series": 60,
        "statistics": ["Minimum", "p90"],
        "page_points": 400,
        "max_workers": 1,
        "fetch_units": True,
    },
)
# The same shapes, smaller (``--quick``): still two calls and pages, over shorter windows.
QUICK_DATASETS: tuple[dict[str, Any], ...] = (
    {"series": 60, "statistics": ["Average"], "page_points": 200, "max_workers": 1},
    {
        "series": 260,
        "statistics": ["Average", "Maximum"],
        "span": 1800,
        "page_points": 1000,
        "max_workers": 4,
    },
    {"series": 510, "statistics": ["Sum"], "span": 1200, "page_points": 500, "max_workers": 1},
    {
        "series": 20,
        "statistics": ["Minimum", "p90"],
        "page_points": 150,
        "max_workers": 1,
        "fetch_units": True,
    },
)
# The crash chains' datasets (each run is a child process: kept small).
CRASH_DATASETS: tuple[dict[str, Any], ...] = (
    {"series": 120, "statistics": ["Average"], "max_workers": 1},
    {"series": 120, "statistics": ["Average", "Maximum"], "max_workers": 4},
)


@dataclass
class Tally:
    """One row of the table, and what went wrong in it (printed under the table)."""

    fault: str
    runs: int = 0
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    repeated: int = 0
    conflicting: int = 0
    state_ahead: int = 0
    # Lost for a target that keeps only rows followed by a STATE (see committed_records).
    committed_lost: int = 0
    unexpected_failures: int = 0
    # Coverage: runs that failed, and of those, how many had written rows (and a STATE) first.
    failed_runs: int = 0
    failed_after_rows: int = 0
    # SIGKILLs sent (the SIGKILL row: one to three a chain, fewer if a run ends first).
    kills: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.conflicting
            or self.committed_lost
            or self.state_ahead
            or self.unexpected_failures
        )

    def add_delivery(
        self,
        spec: dict[str, Any],
        records: list[dict[str, Any]],
        committed: list[dict[str, Any]],
        label: str,
    ) -> None:
        """Count one scenario's records against every datapoint the spec's fake holds.

        ``records``: every RECORD the target read; ``committed``: those a target committing at
        each STATE kept (a failed or killed run's records after its last STATE left out).
        """
        expected = expected_for(spec)[1]
        kept = check_delivery(expected, committed)
        if kept.lost:
            self.committed_lost += len(kept.lost)
            self.problems.append(
                f"{label}: {len(kept.lost)} lost by a target committing at each STATE, "
                f"e.g. {kept.lost[:3]}"
            )
        delivery = check_delivery(expected, records)
        self.runs += 1
        self.expected += delivery.expected
        self.delivered += delivery.delivered
        self.lost += len(delivery.lost)
        self.repeated += delivery.repeated
        self.conflicting += len(delivery.conflicting)
        if delivery.lost:
            self.problems.append(f"{label}: {len(delivery.lost)} lost, e.g. {delivery.lost[:3]}")
        self.problems.extend(f"{label}: {c}" for c in delivery.conflicting[:3])

    def row(self) -> str:
        return (
            f"| {self.fault} | {self.runs:,} | {self.expected:,} | {self.delivered:,} "
            f"| {self.lost:,} | {self.repeated:,} | {self.conflicting:,} |"
        )


# -- in-process runs --------------------------------------------------------------------------


@contextlib.contextmanager
def campaign_patches() -> Iterator[MonkeyPatch]:
    """No network, no real sleeping in retries, a STATE every few rows, quiet logs; undone after.

    Retries keep the tap's own attempt count (see :func:`retry_attempts`): only the waits go.
    """
    patch = MonkeyPatch()
    no_network(patch)
    fast_retries(patch)
    spec = full_spec({})
    patch.setattr(MetricsStream, "STATE_MSG_FREQUENCY", spec["state_msg_frequency"])
    patch.setattr(MetricsStream, "STATE_ROWS_PER_SERIES", spec["state_rows_per_series"])
    previous = logging.root.manager.disable
    # Warnings (partial data, retries) and errors (the injected failures) by the hundred: each
    # run's outcome is checked from its messages and its exception instead.
    logging.disable(logging.ERROR)
    try:
        yield patch
    finally:
        logging.disable(previous)
        patch.undo()


def retry_attempts() -> int:
    """Attempts per request of the tap's client as configured by default, the first included.

    Read from the client the tap builds (botocore's ``total_max_attempts``) rather than from a
    constant, so that bursts "within the retries" stay within them whatever the tap's default.
    """
    spec = DATASETS[0]
    tap = make_fake_tap(tap_config(spec), FakeCloudWatch(), now=full_spec(spec)["now"])
    return int(tap.client.meta.config.retries["total_max_attempts"])


@functools.lru_cache(maxsize=16)
def _expected(spec_json: str) -> tuple[set[Row], dict[PeriodKey, float]]:
    spec = json.loads(spec_json)
    rows = expected_rows(spec)
    return rows, keyed(spec, rows)


def expected_for(spec: dict[str, Any]) -> tuple[set[Row], dict[PeriodKey, float]]:
    """Every datapoint of a spec's window, as rows and by primary key (computed once per spec)."""
    return _expected(json.dumps(full_spec(spec), sort_keys=True))


def run_once(spec: dict[str, Any], fake: FakeCloudWatch, state: dict | None) -> SyncOutput:
    """One in-process run; a failure is kept in ``error``, with the messages written before it.

    (``tests.fakes.run_sync`` either raises or insists on a failure; a campaign needs both
    outcomes with their messages.)
    """
    tap = make_fake_tap(tap_config(spec), fake, state, now=full_spec(spec)["now"])
    return capture_sync(tap, decode=decode_line)


def run_to_completion(
    spec: dict[str, Any],
    fake: FakeCloudWatch,
    tally: Tally,
    label: str,
    *,
    must_fail_first: bool = False,
    must_not_fail: bool = False,
    runs_after_success: int = 0,
) -> list[SyncOutput]:
    """Run; after a failure, clear the faults and rerun from the last STATE written (up to
    :data:`MAX_RERUNS` times). ``runs_after_success`` more runs follow a completed one (faults
    cleared first), for faults whose effect is a held-back bookmark rather than an error.

    Every run's STATEs are checked against the records written before them.
    """
    rows = expected_for(spec)[0]
    outputs: list[SyncOutput] = []
    state: dict | None = None
    more = runs_after_success
    for attempt in range(MAX_RERUNS + 1 + runs_after_success):
        output = run_once(spec, fake, state)
        outputs.append(output)
        ahead = state_violations(output.messages, rows, state)
        if ahead:
            tally.state_ahead += len(ahead)
            tally.problems.extend(f"{label} run {attempt}: {p}" for p in ahead[:3])
        if output.error is not None:
            tally.failed_runs += 1
            tally.failed_after_rows += bool(output.records and output.states)
        if output.error is not None and must_not_fail:
            tally.unexpected_failures += 1
            tally.problems.append(f"{label} run {attempt} failed: {output.error!r}")
        if output.error is None and attempt == 0 and must_fail_first:
            tally.unexpected_failures += 1
            tally.problems.append(f"{label}: the injected fault did not fail the run")
        if output.states:
            state = output.states[-1]
        if output.error is None:
            if more == 0:
                break
            more -= 1
        fake.clear_faults()
    return outputs


def delivered(outputs: Sequence[SyncOutput]) -> tuple[list[dict], list[dict]]:
    """Every record of a scenario's runs, and those a target committing at each STATE kept."""
    records = [r for o in outputs for r in o.records]
    committed = [
        r for o in outputs for r in committed_records(o.messages, complete=o.error is None)
    ]
    return records, committed


# -- scenarios --------------------------------------------------------------------------------


class Campaign:
    """The rows' scenarios, sharing the seeded generator and each dataset's clean request counts."""

    def __init__(
        self,
        seed: int,
        runs: int,
        crash_chains: int,
        workdir: Path,
        datasets: Sequence[dict[str, Any]] = DATASETS,
    ) -> None:
        self.datasets = datasets
        self.rng = random.Random(seed)
        self.seed = seed
        self.runs = runs
        self.crash_chains = crash_chains
        self.workdir = workdir
        self._counts: dict[int, dict[str, int]] = {}
        self.attempts = retry_attempts()

    def dataset(self) -> tuple[int, dict[str, Any]]:
        index = self.rng.randrange(len(self.datasets))
        return index, dict(self.datasets[index])

    def clean_counts(self, index: int) -> dict[str, int]:
        """Requests per operation of a clean run of a dataset (where a fault may land)."""
        if index not in self._counts:
            spec = self.datasets[index]
            fake = build_spec_fake(spec)
            output = run_once(spec, fake, None)
            if output.error is not None:
                raise output.error
            self._counts[index] = {
                op: fake.count(op) for op in ("ListMetrics", "GetMetricData", "GetMetricStatistics")
            }
        return self._counts[index]

    def operation(self, spec: dict[str, Any], weights: dict[str, float]) -> str:
        choices = {
            op: w
            for op, w in weights.items()
            if op != "GetMetricStatistics" or full_spec(spec)["fetch_units"]
        }
        return self.rng.choices(list(choices), weights=list(choices.values()))[0]

    # -- rows --

    def bursts(self, fault: str, variants: Sequence[dict[str, Any]]) -> Tally:
        """A burst shorter than the retry limit, at a random request: the run must complete."""
        tally = Tally(fault)
        limit = self.attempts - 1
        weights = {"GetMetricData": 0.7, "ListMetrics": 0.15, "GetMetricStatistics": 0.15}
        for number in range(self.runs):
            index, spec = self.dataset()
            counts = self.clean_counts(index)
            op = self.operation(spec, weights)
            variant = self.rng.choice(variants)
            times = self.rng.randint(1, limit)
            after = self.rng.randrange(counts[op])
            fake = build_spec_fake(spec)
            fake.fail_next(op, times=times, after=after, **variant)
            label = f"#{number} dataset {index} {op} {variant} x{times} after {after}"
            outputs = run_to_completion(spec, fake, tally, label, must_not_fail=True)
            tally.add_delivery(spec, *delivered(outputs), label)
        return tally

    def throttling_past_retries(self) -> Tally:
        """Throttling on every request from a random one on: the run fails; rerun completes."""
        tally = Tally("throttling outlasting the retries (run fails), rerun from last STATE")
        weights = {"GetMetricData": 0.85, "ListMetrics": 0.15}
        for number in range(self.runs):
            index, spec = self.dataset()
            counts = self.clean_counts(index)
            op = self.operation(spec, weights)
            code, status = self.rng.choice([("Throttling", 400), ("TooManyRequestsException", 429)])
            after = self.rng.randrange(counts[op])
            fake = build_spec_fake(spec)
            fake.fail_next(op, code=code, status=status, times=None, after=after)
            label = f"#{number} dataset {index} {op} {code} from request {after}"
            outputs = run_to_completion(spec, fake, tally, label, must_fail_first=True)
            tally.add_delivery(spec, *delivered(outputs), label)
        return tally

    def internal_error(self) -> Tally:
        """One query answered ``InternalError``: the run fails; the rerun completes."""
        tally = Tally("a query answered `InternalError` (run fails), rerun from last STATE")
        for number in range(self.runs):
            index, spec = self.dataset()
            series = self.rng.randrange(spec["series"])
            statistic = self.rng.choice([None, *spec["statistics"]])
            fake = build_spec_fake(spec)
            fake.force_status(
                "InternalError",
                dimensions={"InstanceId": f"i-{series:017x}"},
                statistic=statistic,
            )
            label = f"#{number} dataset {index} series {series} {statistic or 'every statistic'}"
            outputs = run_to_completion(spec, fake, tally, label, must_fail_first=True)
            tally.add_delivery(spec, *delivered(outputs), label)
        return tally

    def partial_data(self) -> Tally:
        """``PartialData`` and no page left (cut short, or empty): the next run gets the rest."""
        tally = Tally("`PartialData` on the last page, then the next run")
        for number in range(self.runs):
            index, spec = self.dataset()
            spec = full_spec(spec)
            series = self.rng.randrange(spec["series"])
            statistic = self.rng.choice([None, *spec["statistics"]])
            dims = {"InstanceId": f"i-{series:017x}"}
            fake = build_spec_fake(spec)
            if self.rng.random() < 0.5:
                start = spec["now"] - spec["span"]
                cut = self.rng.randrange(start - spec["period"], spec["now"], spec["period"])
                fake.truncate(cut, dimensions=dims, statistic=statistic)
                how = f"cut after {cut}"
            else:
                fake.force_status("PartialData", dimensions=dims, statistic=statistic)
                how = "answered empty"
            label = f"#{number} dataset {index} series {series} {statistic or 'all'} {how}"
            outputs = run_to_completion(
                spec, fake, tally, label, must_not_fail=True, runs_after_success=1
            )
            tally.add_delivery(spec, *delivered(outputs), label)
        return tally

    def sigkill(self) -> Tally:
        """The CLI in a child, SIGKILLed at random lines, rerun from the last STATE kept."""
        tally = Tally("SIGKILL at random points (tap CLI in a child), rerun from last STATE")
        for number in range(self.crash_chains):
            spec = dict(self.rng.choice(CRASH_DATASETS))
            rows, expected = expected_for(spec)
            kills = self.rng.randint(1, 3)
            plans = [KillPlan.draw(self.rng, 0.3) for _ in range(kills)]
            lines_per_row = 1 + 1 / full_spec(spec)["state_msg_frequency"]
            try:
                chain = kill_chain(
                    spec,
                    self.workdir / f"chain{number}",
                    plans,
                    expected=expected,
                    lines_per_row=lines_per_row,
                )
            except ChildFailedError as exc:  # the tap crashed on its own: no chain to count
                tally.runs += 1
                tally.unexpected_failures += 1
                tally.problems.append(f"chain #{number} {spec}: {exc}")
                continue
            tally.kills += chain.kills
            label = f"chain #{number} {spec}: {chain.describe()}"
            ahead = states_ahead(chain, rows)
            tally.state_ahead += len(ahead)
            tally.problems.extend(f"{label}: {p}" for p in ahead[:3])
            final = final_state_problems(chain, expected)
            tally.unexpected_failures += len(final)
            tally.problems.extend(f"{label}: {p}" for p in final)
            records = [r for run in chain.runs for r in run.records]
            committed = [r for run in chain.runs for r in run.committed_records]
            tally.add_delivery(spec, records, committed, label)
        return tally


# -- the campaign -------------------------------------------------------------------------------

THROTTLING = [
    {"code": "Throttling", "status": 400},
    {"code": "TooManyRequestsException", "status": 429},
]
SERVER_ERRORS = [
    {"code": "InternalServiceError", "status": 500},
    {"code": "ServiceUnavailable", "status": 503},
]
TRANSPORT = [{"transport": "connection_reset"}, {"transport": "read_timeout"}]
DEFAULT_RUNS = 21
QUICK_RUNS = 3


def crash_chains_for(runs: int) -> int:
    """Kill chains of the SIGKILL row: a third of ``runs`` (each is several child processes)."""
    return max(1, runs // 3)


def run_campaign(runs: int, seed: int, *, quick: bool = False) -> list[Tally]:
    """Every row, ``runs`` scenarios each (:func:`crash_chains_for` chains for SIGKILL);
    ``quick`` draws from the smaller datasets."""
    datasets = QUICK_DATASETS if quick else DATASETS
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp, campaign_patches():
        campaign = Campaign(seed, runs, crash_chains_for(runs), Path(tmp), datasets)
        rows: list[Callable[[], Tally]] = [
            campaign.sigkill,
            lambda: campaign.bursts(
                "throttling bursts (`Throttling` 400, `TooManyRequestsException` 429) "
                "that clear within the retries",
                THROTTLING,
            ),
            lambda: campaign.bursts(
                "HTTP 500 / 503 bursts that clear within the retries", SERVER_ERRORS
            ),
            lambda: campaign.bursts(
                "connection resets / read timeouts that clear within the retries", TRANSPORT
            ),
            campaign.throttling_past_retries,
            campaign.internal_error,
            campaign.partial_data,
        ]
        tallies = []
        for row in rows:
            started = time.perf_counter()
            tally = row()
            tally.seconds = time.perf_counter() - started
            tallies.append(tally)
        return tallies


def render(tallies: Sequence[Tally]) -> str:
    """The Markdown table."""
    separator = "|" + "|".join(["---"] + ["---:"] * 6) + "|"
    return "\n".join([HEADER, separator, *(t.row() for t in tallies)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="scenarios per row")
    parser.add_argument("--seed", type=int, default=20260115, help="random seed (reproducible)")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_RUNS} runs per row, smaller datasets"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (QUICK_RUNS if args.quick else DEFAULT_RUNS)
    started = time.perf_counter()
    tallies = run_campaign(runs, args.seed, quick=args.quick)
    with campaign_patches():
        attempts = retry_attempts()
    print(render(tallies))
    print()
    print(
        f"Seed {args.seed}, {runs} runs per row ({crash_chains_for(runs)} kill chains), "
        f"{attempts} attempts per request (the tap's default), "
        f"{time.perf_counter() - started:.1f} s. A run of a row is one scenario: the tap's runs "
        "until the data is complete (reruns from the last STATE included)."
    )
    for tally in tallies:
        failed = (
            f"; {tally.failed_runs} runs failed, {tally.failed_after_rows} of them after writing "
            "rows and a STATE (the rerun resumed mid-way)"
            if tally.failed_runs
            else ""
        )
        killed = f"; {tally.kills} SIGKILLs" if tally.kills else ""
        print(f"- {tally.fault}: {tally.seconds:.1f} s{failed}{killed}.")
    ahead = sum(t.state_ahead for t in tallies)
    failures = sum(t.unexpected_failures for t in tallies)
    committed = sum(t.committed_lost for t in tallies)
    print(
        f"STATE bookmarks ahead of their records: {ahead}. Datapoints lost by a target that "
        f"commits only at each STATE: {committed}. Unexpected run outcomes: {failures}."
    )
    bad = [t for t in tallies if not t.ok]
    for tally in bad:
        print(f"\nFAILED: {tally.fault}")
        for problem in tally.problems[:20]:
            print(f"  - {problem}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
