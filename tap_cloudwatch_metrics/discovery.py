"""Discovery: every series of the namespace, from all pages of ListMetrics.

ListMetrics may return a series more than once and its ``Dimensions`` filter matches any
series that has *at least* those dimensions; the spec's ``dimensions`` option means "that
specific dimension combination", so the exact set is checked here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.usage import ApiUsage


def select_series(
    metrics: Iterable[Mapping[str, Any] | tuple[Mapping[str, Any], str]],
    region: str,
    namespace: str,
    dimensions: Mapping[str, str] | None,
) -> list[Series]:
    """Deduplicated series of ``namespace`` with exactly ``dimensions`` (all when None), sorted.

    An entry may come with its owning account (``(metric, account_id)``, linked accounts).
    """
    wanted = tuple(sorted(dimensions.items())) if dimensions else None
    found: set[Series] = set()
    for entry in metrics:
        metric, account = entry if isinstance(entry, tuple) else (entry, "")
        if metric.get("Namespace") != namespace or not metric.get("MetricName"):
            continue
        series = Series.from_api(region, metric, account)
        if wanted is None or series.dimensions == wanted:
            found.add(series)
    return sorted(found)


def list_metrics(
    client: Any,
    namespace: str,
    dimensions: Mapping[str, str] | None,
    usage: ApiUsage,
    *,
    recently_active: bool = False,
    linked_accounts: bool = False,
) -> Iterable[Mapping[str, Any] | tuple[Mapping[str, Any], str]]:
    """Yield every ``Metrics`` entry of every ListMetrics page.

    With ``linked_accounts`` (a CloudWatch monitoring account) every entry comes with its
    owning account, from the page's ``OwningAccounts`` list (same order as ``Metrics``).
    """
    request: dict[str, Any] = {"Namespace": namespace}
    if recently_active:
        request["RecentlyActive"] = "PT3H"
    if linked_accounts:
        request["IncludeLinkedAccounts"] = True
    if dimensions:
        request["Dimensions"] = [
            {"Name": name, "Value": value} for name, value in sorted(dimensions.items())
        ]
    seen_tokens: set[str] = set()
    while True:
        response = client.list_metrics(**request)
        usage.add_list_metrics()
        metrics = response.get("Metrics") or []
        if linked_accounts:
            owners = response.get("OwningAccounts") or []
            if len(owners) != len(metrics):
                msg = (
                    f"ListMetrics returned {len(metrics)} metrics but {len(owners)} owning "
                    "accounts; cannot tell which account a series belongs to"
                )
                raise RuntimeError(msg)
            yield from zip(metrics, map(str, owners), strict=True)
        else:
            yield from metrics
        token = response.get("NextToken")
        if not token:
            return
        if token in seen_tokens:
            msg = "ListMetrics repeated a NextToken; stopping rather than listing forever"
            raise RuntimeError(msg)
        seen_tokens.add(token)
        request["NextToken"] = token


def discover_series(
    client: Any,
    region: str,
    namespace: str,
    dimensions: Mapping[str, str] | None,
    usage: ApiUsage,
    *,
    recently_active: bool = False,
    linked_accounts: bool = False,
) -> list[Series]:
    """All series of the namespace (filtered to the exact dimension set when given).

    With ``recently_active`` only series published to in the last three hours are listed;
    with ``linked_accounts`` those of the accounts linked to this monitoring account too.
    """
    metrics = list_metrics(
        client,
        namespace,
        dimensions,
        usage,
        recently_active=recently_active,
        linked_accounts=linked_accounts,
    )
    return select_series(metrics, region, namespace, dimensions)
