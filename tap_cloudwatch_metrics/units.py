"""Each series' unit, looked up once with GetMetricStatistics.

GetMetricData returns no unit, and ListMetrics neither; GetMetricStatistics returns the unit
on every datapoint. One small request per series that has data and no known unit yet; the
stream keeps the answer in the series' state, so a series costs one lookup in its lifetime.
Without the ``cloudwatch:GetMetricStatistics`` permission the lookups stop for the run and
``unit`` stays null, never a guessed value.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.usage import ApiUsage

UTC = dt.timezone.utc
# One-hour aggregates exist for every retention age, so one lookup window fits any datapoint.
LOOKUP_PERIOD = 3600
LOOKUP_THREADS = 8
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
logger = logging.getLogger("tap-cloudwatch-metrics")


class UnitLookup:
    """Looks up units, and stops for the rest of the run when permission is missing."""

    def __init__(self, client_for: Callable[[str], Any], usage: ApiUsage) -> None:
        self._client_for = client_for
        self._usage = usage
        self._lock = threading.Lock()
        self.denied = False

    def lookup(self, wanted: Mapping[Series, int]) -> dict[Series, str]:
        """Units of the series in ``wanted`` (series -> a timestamp it has data at)."""
        if self.denied or not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(LOOKUP_THREADS, len(wanted))) as pool:
            answers = list(pool.map(self._one, wanted.keys(), wanted.values()))
        return {series: unit for series, unit in zip(wanted, answers, strict=True) if unit}

    def _one(self, series: Series, timestamp: int) -> str | None:
        if self.denied:
            return None
        start = timestamp - timestamp % LOOKUP_PERIOD
        try:
            response = self._client_for(series.region).get_metric_statistics(
                Namespace=series.namespace,
                MetricName=series.metric_name,
                Dimensions=series.api_dimensions,
                StartTime=dt.datetime.fromtimestamp(start, UTC),
                EndTime=dt.datetime.fromtimestamp(start + LOOKUP_PERIOD, UTC),
                Period=LOOKUP_PERIOD,
                Statistics=["SampleCount"],
            )
        except botocore.exceptions.ClientError as exc:
            self._usage.add_get_metric_statistics()
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _DENIED:
                self._deny()
            else:
                logger.warning(
                    "Unit lookup for %s failed (%s); retried next run", series.describe(), code
                )
            return None
        self._usage.add_get_metric_statistics()
        for point in response.get("Datapoints") or ():
            if unit := point.get("Unit"):
                return str(unit)
        return None

    def _deny(self) -> None:
        """Stop lookups for the run; warn once even when several threads were refused."""
        with self._lock:
            if self.denied:
                return
            self.denied = True
        logger.warning(
            "Unit lookup needs the cloudwatch:GetMetricStatistics permission; "
            "unit stays null for this run (or set fetch_units to false)"
        )
