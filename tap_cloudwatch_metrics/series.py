"""A CloudWatch time series: one metric name with one exact set of dimensions.

CloudWatch identifies a series by namespace, metric name and the *set* of its dimensions; the
order in which an API returns dimensions is not meaningful, so a series keeps them sorted and
derives every key from that canonical form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True, slots=True)
class Series:
    """One metric-dimension combination in one region, the unit of state and of partitioning.

    Slotted, with its two keys computed once: a run holds one per series (10,000 and more).
    """

    region: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...] = field(default=())
    # The owning account, known when ListMetrics was asked for linked accounts; else "".
    account_id: str = ""
    series_id: str = field(init=False, compare=False, repr=False)
    dimensions_key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Canonical JSON of the sorted dimensions: unambiguous where ``Name=Value,...`` is not
        # (dimension names and values may contain commas and equals signs).
        object.__setattr__(
            self,
            "dimensions_key",
            json.dumps(
                dict(self.dimensions), sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ),
        )
        # A hash keeps STATE small and the warehouse key short (a B-tree key over 30 long
        # dimension values would exceed PostgreSQL's index row limit).
        # The account joins the identity only when known, so series read without linked
        # accounts keep the ids (and bookmarks) they always had.
        identity: list = [
            self.region,
            self.namespace,
            self.metric_name,
            [list(d) for d in self.dimensions],
        ]
        if self.account_id:
            identity.append(self.account_id)
        canonical = json.dumps(identity, separators=(",", ":"), ensure_ascii=False)
        object.__setattr__(
            self, "series_id", hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]
        )

    @classmethod
    def from_api(cls, region: str, metric: dict, account_id: str = "") -> Series:
        """Build a series from a ListMetrics ``Metrics`` entry (dimension order normalised)."""
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions") or ()))
        return cls(region, metric["Namespace"], metric["MetricName"], dims, account_id)

    @property
    def dimensions_map(self) -> dict[str, str]:
        """A new dict of the dimensions: the record's ``dimensions`` column."""
        return dict(self.dimensions)

    @property
    def api_dimensions(self) -> list[dict[str, str]]:
        """Dimensions in the request shape of GetMetricData / GetMetricStatistics."""
        return [{"Name": name, "Value": value} for name, value in self.dimensions]

    def describe(self) -> str:
        """Human-readable name for logs and errors."""
        dims = ", ".join(f"{n}={v}" for n, v in self.dimensions)
        where = f" (account {self.account_id})" if self.account_id else ""
        return f"{self.namespace} {self.metric_name}" + (f" [{dims}]" if dims else "") + where
