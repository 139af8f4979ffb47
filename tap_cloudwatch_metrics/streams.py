"""The ``metrics`` stream: one partition per series, many partitions per API call.

The SDK syncs partitions one by one. When it asks for a series whose data is not buffered, the
stream fetches that series' whole batch (planned up front, each series from its own bookmark)
and then serves the following partitions from the buffer, so 500 queries share one call and
memory holds one batch at a time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream

from tap_cloudwatch_metrics.discovery import discover_series
from tap_cloudwatch_metrics.fetcher import fetch_calls
from tap_cloudwatch_metrics.planner import (
    Batch,
    SeriesWindow,
    align_up,
    plan_batches,
    run_end,
    window_start,
)
from tap_cloudwatch_metrics.results import DataPoint, assemble
from tap_cloudwatch_metrics.schema import METRICS_SCHEMA, PRIMARY_KEYS
from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.state import IndexedStreamStateManager
from tap_cloudwatch_metrics.units import UnitLookup

if TYPE_CHECKING:
    from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics

UTC = dt.timezone.utc
HISTORY_START_KEY = "history_start"


@dataclass
class RunPlan:
    """What this run fetches: series in partition order, their batches, and the run's end."""

    series: list[Series]
    windows: list[SeriesWindow]
    batches: list[Batch]
    end: int
    position_of: dict[str, int] = field(default_factory=dict)
    batch_of: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.position_of = {s.series_id: i for i, s in enumerate(self.series)}
        self.batch_of = {p: b for b, batch in enumerate(self.batches) for p in batch.positions}


def parse_bookmark(value: object) -> int | None:
    """Epoch seconds of a stored ``replication_key_value``; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


class MetricsStream(Stream):
    """Datapoints of every discovered series, incremental by ``timestamp`` per series."""

    name = "metrics"
    primary_keys = PRIMARY_KEYS
    replication_key = "timestamp"
    is_sorted = True

    def __init__(self, tap: TapCloudWatchMetrics) -> None:
        super().__init__(tap=tap, schema=METRICS_SCHEMA)
        self._cw_tap = tap
        self._run: RunPlan | None = None
        self._loaded_batch: int | None = None
        self._buffer: dict[int, list[DataPoint]] = {}
        self._closes_timestamp = True
        self._units: UnitLookup | None = None

    # -- SDK hooks ---------------------------------------------------------------------------

    @property
    def state_manager(self) -> IndexedStreamStateManager:
        """Indexed per-partition state (see :mod:`tap_cloudwatch_metrics.state`)."""
        if self._state_manager is None:
            self._state_manager = IndexedStreamStateManager(
                tap_name=self.tap_name,
                stream_name=self.name,
                tap_state=self._tap_state,
                state_partitioning_keys=self.state_partitioning_keys,
                is_sorted=self.is_sorted,
                check_sorted=self.check_sorted,
            )
        assert isinstance(self._state_manager, IndexedStreamStateManager)
        return self._state_manager

    @property
    def partitions(self) -> list[dict] | None:
        """One context per series with a window due this run, in fetch order."""
        plan = self._plan()
        return [{"series_id": plan.series[w.position].series_id} for w in plan.windows] or None

    def get_replication_key_signpost(self, context: dict | None = None) -> dt.datetime:
        """No datapoint of this run is later than the start of its last closed period."""
        return dt.datetime.fromtimestamp(self._run_end() - self._cw_tap.settings.period, UTC)

    def _write_starting_replication_value(self, context: dict | None) -> None:
        """Not used: windows come from each series' own bookmark (see ``_plan``)."""

    def _increment_stream_state(self, latest_record: dict, *, context: dict | None = None) -> None:
        """Advance a series' bookmark only after the last statistic of a timestamp.

        With several statistics a STATE message could otherwise fall between ``Average`` and
        ``Maximum`` of one timestamp, and a run resumed from it would skip the ``Maximum``.
        """
        if self._closes_timestamp:
            super()._increment_stream_state(latest_record, context=context)

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        """Datapoints of the partition's series, from the buffered batch (fetched when needed)."""
        if not context:
            return
        plan = self._plan()
        position = plan.position_of.get(context.get("series_id", ""))
        if position is None or position not in plan.batch_of:
            return
        points = self._points(plan, position)
        if not points:
            return
        series = plan.series[position]
        unit = self.state_manager.get_context_state(context).get("unit")
        period = self._cw_tap.settings.period
        base = {
            "series_id": series.series_id,
            "region": series.region,
            "namespace": series.namespace,
            "metric_name": series.metric_name,
            "dimensions_key": series.dimensions_key,
            "period": period,
            "unit": unit,
        }
        last = len(points) - 1
        for index, point in enumerate(points):
            self._closes_timestamp = index == last or points[index + 1].timestamp != point.timestamp
            yield {
                **base,
                "dimensions": dict(series.dimensions_map),
                "statistic": point.statistic,
                "timestamp": dt.datetime.fromtimestamp(point.timestamp, UTC),
                "value": point.value,
            }
        self._closes_timestamp = True

    # -- planning and fetching ---------------------------------------------------------------

    def _run_end(self) -> int:
        """Exclusive end of every window of this run (see :func:`planner.run_end`)."""
        settings = self._cw_tap.settings
        end_date = int(settings.end_date.timestamp()) if settings.end_date else None
        return run_end(self._cw_tap.run_started, settings.delay_seconds, settings.period, end_date)

    def _plan(self) -> RunPlan:
        if self._run is None:
            self._run = self._make_plan()
        return self._run

    def _history_floor(self) -> int:
        """Where series without a bookmark start: ``start_date`` or the first run's start.

        The default ``start_date`` (60 minutes ago) moves with every run, so the first run's
        value is kept in state: a series that appears next month still starts there (within
        the discovery horizon), not at "60 minutes before that run".
        """
        settings = self._cw_tap.settings
        start = int(settings.start_date.timestamp())
        if settings.start_date_explicit:
            return start
        stream_state = self.state_manager.stream_state
        stored = parse_bookmark(stream_state.get(HISTORY_START_KEY))
        if stored is None:
            stored = align_up(start, settings.period)
            stream_state[HISTORY_START_KEY] = dt.datetime.fromtimestamp(stored, UTC).isoformat()
        return stored

    def _make_plan(self) -> RunPlan:
        tap = self._cw_tap
        settings = tap.settings
        now = tap.run_started
        # Stored even when the namespace is empty, so series that appear later start there.
        floor = self._history_floor()
        series = discover_series(
            tap.client, tap.region, settings.namespace, settings.dimensions, tap.usage
        )
        if not series:
            self.logger.warning(
                "No metrics found in namespace %r in %s%s: ListMetrics shows only series with "
                "data in the last two weeks. Nothing to sync.",
                settings.namespace,
                tap.region,
                f" with dimensions {dict(settings.dimensions)}" if settings.dimensions else "",
            )
            return RunPlan([], [], [], self._run_end())
        end = self._run_end()
        starts: list[tuple[int, Series]] = []
        for item in series:
            state = self.state_manager.find_context_state({"series_id": item.series_id})
            bookmark = parse_bookmark(state.get("replication_key_value")) if state else None
            starts.append((window_start(bookmark, floor, settings.period, now), item))
        starts.sort(key=lambda pair: (pair[0], pair[1].series_id))
        ordered = [item for _, item in starts]
        windows = [
            SeriesWindow(position, start)
            for position, (start, _) in enumerate(starts)
            if start < end
        ]
        batches = plan_batches(windows, end, settings.period, settings.statistics)
        plan = RunPlan(ordered, windows, batches, end)
        self.logger.info(
            "Discovered %d series in %s; %d due up to %s in %d batches (%d GetMetricData calls "
            "planned, %d metric-requests)",
            len(series),
            settings.namespace,
            len(windows),
            dt.datetime.fromtimestamp(end, UTC).isoformat(),
            len(batches),
            sum(len(b.calls) for b in batches),
            sum(len(c.queries) for b in batches for c in b.calls),
        )
        return plan

    def _points(self, plan: RunPlan, position: int) -> list[DataPoint]:
        batch_index = plan.batch_of[position]
        if batch_index != self._loaded_batch:
            self._buffer = {}
            self._buffer = self._load(plan, batch_index)
            self._loaded_batch = batch_index
        return self._buffer.pop(position, [])

    def _load(self, plan: RunPlan, batch_index: int) -> dict[int, list[DataPoint]]:
        tap = self._cw_tap
        settings = tap.settings
        batch = plan.batches[batch_index]
        started = time.monotonic()
        results = fetch_calls(tap.client, batch.calls, plan.series, settings.period, tap.usage)
        assembled = assemble(batch, results, plan.end, settings.statistics)
        if settings.fetch_units and self.mask[("properties", "unit")]:
            self._fill_units(plan, assembled)
        self.logger.info(
            "Batch %d/%d: %d series, %d datapoints in %.2fs",
            batch_index + 1,
            len(plan.batches),
            len(batch.windows),
            sum(map(len, assembled.values())),
            time.monotonic() - started,
        )
        return assembled

    def _fill_units(self, plan: RunPlan, assembled: dict[int, list[DataPoint]]) -> None:
        """Look up the unit of each series in the batch that has data and no known unit."""
        if self._units is None:
            self._units = UnitLookup(self._cw_tap.client, self._cw_tap.usage)
        wanted: dict[Series, int] = {}
        states: dict[Series, dict] = {}
        for position, points in assembled.items():
            if not points:
                continue
            series = plan.series[position]
            state = self.state_manager.get_context_state({"series_id": series.series_id})
            if not state.get("unit"):
                wanted[series] = points[-1].timestamp
                states[series] = state
        for series, unit in self._units.lookup(wanted).items():
            states[series]["unit"] = unit
