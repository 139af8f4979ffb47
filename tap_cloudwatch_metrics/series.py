"""A CloudWatch time series: one metric name with one exact set of dimensions.

CloudWatch identifies a series by namespace, metric name and the *set* of its dimensions; the
order in which an API returns dimensions is not meaningful, so a series keeps them sorted and
derives every key from that canonical form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, order=True)
class Series:
    """One metric-dimension combination in one region, the unit of state and of partitioning."""

    region: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_api(cls, region: str, metric: dict) -> Series:
        """Build a series from a ListMetrics ``Metrics`` entry (dimension order normalised)."""
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions") or ()))
        return cls(region, metric["Namespace"], metric["MetricName"], dims)

    @cached_property
    def dimensions_map(self) -> dict[str, str]:
        """The dimensions as a plain mapping, the record's ``dimensions`` column."""
        return dict(self.dimensions)

    @cached_property
    def dimensions_key(self) -> str:
        """Canonical JSON of the sorted dimensions.

        JSON rather than ``Name=Value,...`` because dimension names and values may themselves
        contain commas and equals signs; JSON keeps the key unambiguous.
        """
        return json.dumps(
            self.dimensions_map, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    @cached_property
    def series_id(self) -> str:
        """Stable, short identifier: the partition key in state and part of the primary key.

        A hash keeps STATE small and the warehouse key short (a B-tree key over 30 long
        dimension values would exceed PostgreSQL's index row limit).
        """
        canonical = json.dumps(
            [self.region, self.namespace, self.metric_name, list(map(list, self.dimensions))],
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]

    @property
    def api_dimensions(self) -> list[dict[str, str]]:
        """Dimensions in the request shape of GetMetricData / GetMetricStatistics.

        Not cached: it is needed once per run, and 10,000 cached copies cost megabytes.
        """
        return [{"Name": name, "Value": value} for name, value in self.dimensions]

    def describe(self) -> str:
        """Human-readable name for logs and errors."""
        dims = ", ".join(f"{n}={v}" for n, v in self.dimensions)
        return f"{self.namespace} {self.metric_name}" + (f" [{dims}]" if dims else "")
