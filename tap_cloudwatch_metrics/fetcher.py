"""Runs planned GetMetricData calls: every continuation page, every status code checked.

A call's pages are read to the end (``NextToken``); a query still ``PartialData`` on the last
page is marked truncated so that its series is not bookmarked past what arrived, and so is
a query the answer left out altogether. A query
answered ``InternalError`` or ``Forbidden`` fails the run with the series named: the rows of
earlier batches are already out and bookmarked, the failed ones are not, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from tap_cloudwatch_metrics.planner import MAX_DATAPOINTS_PER_PAGE, Call, Query
from tap_cloudwatch_metrics.responses import normalise_points
from tap_cloudwatch_metrics.results import QueryResult
from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.usage import ApiUsage

UTC = dt.timezone.utc
FAILED_STATUSES = frozenset({"InternalError", "Forbidden"})
logger = logging.getLogger("tap-cloudwatch-metrics")


class CloudWatchDataError(RuntimeError):
    """CloudWatch answered, but not with the data asked for."""


def build_queries(call: Call, series: Sequence[Series], period: int) -> list[dict[str, Any]]:
    """The ``MetricDataQueries`` of a call (``AccountId`` for a linked account's series)."""
    queries = []
    for query in call.queries:
        item = series[query.position]
        built: dict[str, Any] = {
            "Id": query.query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": item.namespace,
                    "MetricName": item.metric_name,
                    "Dimensions": item.api_dimensions,
                },
                "Period": period,
                "Stat": query.statistic,
            },
            "ReturnData": True,
        }
        if item.account_id:
            built["AccountId"] = item.account_id
        queries.append(built)
    return queries


def fetch_call(
    client: Any,
    call: Call,
    series: Sequence[Series],
    period: int,
    usage: ApiUsage,
) -> dict[str, QueryResult]:
    """All pages of one planned call, merged per query id."""
    queries = build_queries(call, series, period)
    by_id = {query.query_id: query for query in call.queries}
    results = {query_id: QueryResult() for query_id in by_id}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": dt.datetime.fromtimestamp(call.start, UTC),
        "EndTime": dt.datetime.fromtimestamp(call.end, UTC),
        "ScanBy": "TimestampAscending",
        "MaxDatapoints": MAX_DATAPOINTS_PER_PAGE,
    }
    seen_tokens: set[str] = set()
    statuses: dict[str, str] = {}
    while True:
        response = client.get_metric_data(**request)
        usage.add_get_metric_data(len(queries))
        for message in response.get("Messages") or ():
            logger.warning("GetMetricData: %s: %s", message.get("Code"), message.get("Value"))
        for item in response.get("MetricDataResults") or ():
            query_id = item.get("Id")
            if query_id not in results:
                logger.warning("GetMetricData returned an unknown query id %r; ignored", query_id)
                continue
            status = item.get("StatusCode") or "Complete"
            statuses[query_id] = status
            query = by_id[query_id]
            if status in FAILED_STATUSES:
                detail = "; ".join(
                    f"{m.get('Code')}: {m.get('Value')}" for m in item.get("Messages") or ()
                )
                msg = (
                    f"GetMetricData answered {status} for {series[query.position].describe()} "
                    f"({query.statistic})" + (f": {detail}" if detail else "")
                )
                raise CloudWatchDataError(msg)
            timestamps = item.get("Timestamps") or []
            values = item.get("Values") or []
            if len(timestamps) != len(values):
                msg = (
                    f"GetMetricData answered {len(timestamps)} timestamps and {len(values)} "
                    f"values for {series[query.position].describe()} ({query.statistic})"
                )
                raise CloudWatchDataError(msg)
            epochs, floats, dropped = normalise_points(timestamps, values)
            if dropped:
                logger.warning(
                    "GetMetricData: %d datapoints of %s (%s) had an unreadable timestamp or "
                    "value and were skipped",
                    dropped,
                    series[query.position].describe(),
                    query.statistic,
                )
            results[query_id].extend(epochs, floats)
        token = response.get("NextToken")
        if not token:
            break
        if token in seen_tokens:
            msg = "GetMetricData repeated a NextToken; stopping to avoid an endless loop"
            raise CloudWatchDataError(msg)
        seen_tokens.add(token)
        request["NextToken"] = token
    _hold_back_incomplete(results, statuses, by_id, series)
    return results


def _hold_back_incomplete(
    results: dict[str, QueryResult],
    statuses: dict[str, str],
    by_id: dict[str, Query],
    series: Sequence[Series],
) -> None:
    """Mark the queries whose series must not be bookmarked past what arrived.

    A query still ``PartialData`` on the last page is capped at its last datapoint. A query
    with no result at all is capped before its window: its rows are unknown, and the other
    statistics' rows of its series would otherwise move the bookmark past them for good.
    """
    for query_id, query in by_id.items():
        if query_id not in statuses:
            results[query_id].truncated = True
            logger.warning(
                "GetMetricData returned no result for %s (%s); that series is not bookmarked "
                "this run and the next run asks for it again",
                series[query.position].describe(),
                query.statistic,
            )
    for query_id, status in statuses.items():
        if status == "PartialData":
            results[query_id].truncated = True
            query = by_id[query_id]
            logger.warning(
                "CloudWatch returned partial data for %s (%s) with no page left; "
                "its bookmark stops at the last datapoint received and the next run "
                "continues from there",
                series[query.position].describe(),
                query.statistic,
            )
