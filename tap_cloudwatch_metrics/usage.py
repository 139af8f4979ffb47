"""Counts of the CloudWatch requests a run makes, and what they cost.

GetMetricData is billed per metric requested (per query per call, continuation pages
included); ListMetrics and GetMetricStatistics per request. Both at $0.01 per 1,000
(us-east-1 list price, before any free tier).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

USD_PER_BILLED_REQUEST = 0.01 / 1000


@dataclass
class ApiUsage:
    """Thread-safe tallies of requests sent (retries by botocore not included)."""

    list_metrics_calls: int = 0
    get_metric_data_calls: int = 0
    billed_metric_requests: int = 0
    get_metric_statistics_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_list_metrics(self) -> None:
        """One ListMetrics page requested."""
        with self._lock:
            self.list_metrics_calls += 1

    def add_get_metric_data(self, queries: int) -> None:
        """One GetMetricData page requested carrying ``queries`` queries."""
        with self._lock:
            self.get_metric_data_calls += 1
            self.billed_metric_requests += queries

    def add_get_metric_statistics(self) -> None:
        """One GetMetricStatistics request (a unit lookup)."""
        with self._lock:
            self.get_metric_statistics_calls += 1

    @property
    def estimated_usd(self) -> float:
        """List-price cost of the requests counted so far."""
        billed = (
            self.billed_metric_requests + self.list_metrics_calls + self.get_metric_statistics_calls
        )
        return billed * USD_PER_BILLED_REQUEST

    def summary(self) -> str:
        """One log line."""
        return (
            f"CloudWatch API usage: ListMetrics {self.list_metrics_calls} calls; "
            f"GetMetricData {self.get_metric_data_calls} calls, "
            f"{self.billed_metric_requests} metric-requests billed; "
            f"GetMetricStatistics {self.get_metric_statistics_calls} calls (unit lookups); "
            f"estimated cost ${self.estimated_usd:.4f}"
        )
