"""Child process: the floor, a minimal boto3 script doing the same fetch as the tap.

What a user would write in a few minutes: a plain ``boto3.client`` (botocore's default
timestamp parsing, default retries), ListMetrics over every page, GetMetricData with up to 500
queries a call and ``NextToken`` followed, one JSON line per datapoint on stdout. No state, no
schema, no unit lookups, no delay logic: the window is given (the same one the tap computes).

Usage (the parent runs it): ``run_floor.py <workload json> <summary path>``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ACCESS_KEY,
    NAMESPACE,
    REGION,
    SECRET_KEY,
    child_harness,
)

MAX_QUERIES = 500


def floor(client, namespace, statistics, period, start, end, out) -> int:
    metrics = []
    request = {"Namespace": namespace}
    while True:
        page = client.list_metrics(**request)
        metrics.extend(page["Metrics"])
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]

    wanted = [(metric, stat) for metric in metrics for stat in statistics]
    rows = 0
    for first in range(0, len(wanted), MAX_QUERIES):
        chunk = wanted[first : first + MAX_QUERIES]
        queries = [
            {
                "Id": f"m{i}",
                "MetricStat": {"Metric": metric, "Period": period, "Stat": stat},
                "ReturnData": True,
            }
            for i, (metric, stat) in enumerate(chunk)
        ]
        request = {
            "MetricDataQueries": queries,
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            response = client.get_metric_data(**request)
            for result in response["MetricDataResults"]:
                metric, stat = chunk[int(result["Id"][1:])]
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                for timestamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                    line = {
                        "namespace": metric["Namespace"],
                        "metric_name": metric["MetricName"],
                        "dimensions": dimensions,
                        "statistic": stat,
                        "timestamp": timestamp.isoformat(),
                        "value": value,
                    }
                    out.write(json.dumps(line) + "\n")
                    rows += 1
            if not response.get("NextToken"):
                break
            request["NextToken"] = response["NextToken"]
    return rows


def main(argv: list[str]) -> None:
    with child_harness("floor", argv) as (workload, fake, _rest):
        import boto3  # noqa: PLC0415

        client = boto3.client(
            "cloudwatch",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        fake.attach(client)
        floor(
            client,
            NAMESPACE,
            workload.statistics,
            workload.period,
            dt.datetime.fromtimestamp(workload.start, dt.timezone.utc),
            dt.datetime.fromtimestamp(workload.end, dt.timezone.utc),
            sys.stdout,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
