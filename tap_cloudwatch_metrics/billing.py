"""Pure: what a run and a schedule of runs cost, and the ``plan`` command's report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tap_cloudwatch_metrics.usage import USD_PER_BILLED_REQUEST

MONTH_SECONDS = 30 * 86400
_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> int:
    """Seconds of a schedule like ``15m``, ``1h``, ``1d`` or ``3600``; ValueError otherwise."""
    match = _EVERY.match(text)
    if not match or int(match.group(1)) <= 0:
        msg = f"--every {text!r}: use a positive number with s, m, h or d, e.g. 1h"
        raise ValueError(msg)
    return int(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]


@dataclass(frozen=True)
class PlanReport:
    """The numbers of one planned run, and of a run at a steady schedule."""

    namespace: str
    region: str
    period: int
    statistics: Sequence[str]
    series_listed: int
    series_due: int
    window_end: str
    recently_active: bool
    list_metrics_calls: int
    get_metric_data_calls: int
    billed_metric_requests: int
    minimum_metric_requests: int
    unit_lookups_at_most: int
    every: int | None = None
    steady_calls: int | None = None

    @property
    def run_usd(self) -> float:
        """List price of the run's ListMetrics and GetMetricData requests."""
        return (self.list_metrics_calls + self.billed_metric_requests) * USD_PER_BILLED_REQUEST

    @property
    def runs_per_month(self) -> float:
        """Runs in 30 days at the schedule."""
        return MONTH_SECONDS / self.every if self.every else 0.0

    @property
    def steady_metric_requests(self) -> int:
        """Metric-requests of a scheduled run: every listed series, each statistic once."""
        return self.series_listed * len(self.statistics)

    @property
    def month_usd(self) -> float:
        """List price of 30 days of scheduled runs (units are looked up once, so left out)."""
        per_run = self.list_metrics_calls + self.steady_metric_requests
        return self.runs_per_month * per_run * USD_PER_BILLED_REQUEST

    def render(self) -> str:
        """The report as the command prints it."""
        stats = ", ".join(self.statistics)
        lines = [
            f"Plan for {self.namespace} in {self.region}: period {self.period} s, "
            f"statistics {stats}",
            f"  series listed              {self.series_listed:,}"
            f" (ListMetrics RecentlyActive: {'yes' if self.recently_active else 'no'})",
            f"  series due this run        {self.series_due:,}, windows up to {self.window_end}",
            f"  ListMetrics calls          {self.list_metrics_calls:,}",
            f"  GetMetricData calls        {self.get_metric_data_calls:,}",
            f"  billed metric-requests     {self.billed_metric_requests:,}"
            f" (minimum {self.minimum_metric_requests:,})",
            f"  unit lookups               at most {self.unit_lookups_at_most:,} "
            "GetMetricStatistics requests (once per series)",
            f"  cost of this run           ${self.run_usd:,.4f}"
            f" + at most ${self.unit_lookups_at_most * USD_PER_BILLED_REQUEST:,.4f} for units",
        ]
        if self.every:
            lines += [
                f"  every {_duration(self.every):<20} {self.runs_per_month:,.0f} runs a month, "
                f"each {self.steady_calls:,} GetMetricData calls and "
                f"{self.steady_metric_requests:,} metric-requests",
                f"  cost per month             ${self.month_usd:,.2f}",
            ]
        lines.append("  (list prices: $0.01 per 1,000 metrics requested or API requests)")
        return "\n".join(lines)


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
