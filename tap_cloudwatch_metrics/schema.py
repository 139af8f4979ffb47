"""The ``metrics`` table: the spec's columns plus what makes a row unique and loadable."""

from __future__ import annotations

from typing import Any

PRIMARY_KEYS = ("series_id", "statistic", "period", "timestamp")

# ``dimensions`` is declared by hand: the SDK's typing helpers render a string-valued map as
# ``"properties": {}``, which flattening then drops from the SCHEMA while records keep it.
METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "series_id": {
            "type": "string",
            "description": "Stable hash of region, namespace, metric name, dimensions and (with "
            "include_linked_accounts) the owning account: region and account are in the key.",
        },
        "region": {"type": "string", "description": "AWS region of the metric."},
        "account_id": {
            "type": ["string", "null"],
            "description": "AWS account that owns the metric, with include_linked_accounts "
            "(CloudWatch cross-account observability); null otherwise.",
        },
        "namespace": {"type": "string", "description": "CloudWatch namespace."},
        "metric_name": {"type": "string", "description": "Name of the metric."},
        "dimensions": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Dimension name to value, exactly as the series has them.",
        },
        "dimensions_key": {
            "type": "string",
            "description": "Canonical JSON of the sorted dimensions, for joins and grouping.",
        },
        "statistic": {
            "type": "string",
            "description": "Statistic of this value (Average, Sum, p99, ...).",
        },
        "period": {"type": "integer", "description": "Aggregation period in seconds."},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "UTC start of the period the value aggregates.",
        },
        "value": {"type": "number", "description": "Value of the statistic over the period."},
        "unit": {
            "type": ["string", "null"],
            "description": "CloudWatch unit of the metric (from GetMetricStatistics); "
            "null when it could not be looked up.",
        },
    },
    "required": [
        "series_id",
        "region",
        "namespace",
        "metric_name",
        "dimensions",
        "dimensions_key",
        "statistic",
        "period",
        "timestamp",
        "value",
    ],
}
