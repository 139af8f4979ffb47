"""The ``metrics`` stream: one partition per series, many partitions per API call.

The SDK syncs partitions one by one. When it asks for a series whose data has not arrived, the
stream runs the planned GetMetricData calls up to the last one carrying that series' queries
(each series windowed from its own bookmark) and serves the following partitions from what
those calls returned, so 500 queries share one call and memory holds about one call's data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage

from tap_cloudwatch_metrics.discovery import discover_series
from tap_cloudwatch_metrics.fetcher import fetch_call
from tap_cloudwatch_metrics.pipeline import CallPipeline
from tap_cloudwatch_metrics.planner import (
    DISCOVERY_HORIZON,
    align_up,
    retention_floor,
    run_end,
    window_start,
)
from tap_cloudwatch_metrics.progress import ProgressMeter
from tap_cloudwatch_metrics.results import DataPoint, PointBuffer, QueryResult
from tap_cloudwatch_metrics.schedule import (
    Floors,
    RunPlan,
    floors,
    plan_run,
    use_recently_active,
)
from tap_cloudwatch_metrics.schema import METRICS_SCHEMA, PRIMARY_KEYS
from tap_cloudwatch_metrics.series import Series
from tap_cloudwatch_metrics.state import IndexedStreamStateManager
from tap_cloudwatch_metrics.units import UnitLookup
from tap_cloudwatch_metrics.writer import FastSingerWriter

if TYPE_CHECKING:
    from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics

UTC = dt.timezone.utc
HISTORY_START_KEY = "history_start"
LAST_RUN_END_KEY = "last_run_end"


def parse_bookmark(value: object) -> int | None:
    """Epoch seconds of a stored timestamp; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, UTC).isoformat()


class MetricsStream(Stream):
    """Datapoints of every discovered series, incremental by ``timestamp`` per series."""

    name = "metrics"
    primary_keys = PRIMARY_KEYS
    replication_key = "timestamp"
    is_sorted = True
    # Mid-run STATE at most once per this many rows per series due (see _make_plan).
    STATE_ROWS_PER_SERIES = 5

    def __init__(self, tap: TapCloudWatchMetrics) -> None:
        super().__init__(tap=tap, schema=METRICS_SCHEMA)
        self._cw_tap = tap
        self._run: RunPlan | None = None
        self._buffer: PointBuffer | None = None
        self._next_call = 0
        self._pipeline: CallPipeline[dict[str, QueryResult]] | None = None
        self._progress: ProgressMeter | None = None
        self._datapoints = 0
        self._advances_state = True
        self._units: UnitLookup | None = None
        self._iso_cache: dict[int, str] = {}
        self._extracted_at = dt.datetime.now(UTC)
        self._plain_records: bool | None = None
        self.recently_active_used = False
        self._contexts: list[dict] | None = None

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
        if self._contexts is None:
            plan = self.plan()
            self._contexts = [
                {"series_id": plan.series[w.position].series_id} for w in plan.windows
            ]
        return self._contexts or None

    def get_replication_key_signpost(self, context: dict | None = None) -> dt.datetime:
        """No datapoint of this run is later than the start of its last closed period."""
        return dt.datetime.fromtimestamp(self._run_end() - self._cw_tap.settings.period, UTC)

    def _write_starting_replication_value(self, context: dict | None) -> None:
        """Not used: windows come from each series' own bookmark (see :meth:`plan`)."""

    def _increment_stream_state(self, latest_record: dict, *, context: dict | None = None) -> None:
        """Advance a series' bookmark once, at its last row, and only forward.

        Per row, a STATE message could fall between ``Average`` and ``Maximum`` of one
        timestamp, and a run resumed from it would skip the ``Maximum``; once per series it
        is also a twelfth of the work on hourly runs. A STATE written while a series is being
        emitted holds its previous bookmark, so a run resumed from it emits those rows again
        (same keys), never fewer. Rows re-read by ``lookback`` never move a bookmark back.
        """
        if self._advances_state:
            super()._increment_stream_state(latest_record, context=context)

    def finalize_state_progress_markers(self, state: dict | None = None) -> None:
        """After a complete sync, remember how far it reached (new series start near there)."""
        if state is None and self._run is not None:
            self.state_manager.stream_state[LAST_RUN_END_KEY] = _iso(self._run.end)
        super().finalize_state_progress_markers(state)

    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        """Datapoints of the partition's series, fetched with its call (and neighbours')."""
        if not context:
            return
        plan = self.plan()
        position = plan.position_of.get(context.get("series_id", ""))
        if position is None or position not in plan.last_call:
            return
        points = self._points(plan, position)
        if not points:
            return
        series = plan.series[position]
        bookmark = plan.bookmarks.get(position)
        base = {
            "series_id": series.series_id,
            "region": series.region,
            "account_id": series.account_id or None,
            "namespace": series.namespace,
            "metric_name": series.metric_name,
            "dimensions_key": series.dimensions_key,
            "period": self._cw_tap.settings.period,
            "unit": self.state_manager.get_context_state(context).get("unit"),
        }
        last = len(points) - 1
        advances = bookmark is None or points[last].timestamp > bookmark
        iso = self._iso_cache
        for index, point in enumerate(points):
            self._advances_state = index == last and advances
            stamp = iso.get(point.timestamp)
            if stamp is None:
                stamp = iso[point.timestamp] = _iso(point.timestamp)
            yield {
                **base,
                "dimensions": series.dimensions_map,
                "statistic": point.statistic,
                "timestamp": stamp,
                "value": point.value,
            }
        self._advances_state = True

    def generate_child_contexts(self, record: dict, context: dict | None) -> Iterable[dict | None]:
        """None: the stream has no child streams (the SDK's default yields one per record)."""
        return ()

    def _write_record_message(self, record: dict) -> None:
        """Write the RECORD straight to the fast writer when nothing has to change the row."""
        writer = self._tap.message_writer
        if self._plain_record_path() or not isinstance(writer, FastSingerWriter):
            super()._write_record_message(record)
            return
        writer.write_record(self.name, record, self._stream_version, self._extracted_at)
        self.state_manager.is_flushed = False

    def _plain_record_path(self) -> bool:
        """Whether rows must go through the SDK's selection, conforming and stream maps."""
        if self._plain_records is None:
            maps = self.stream_maps
            self._plain_records = not (
                self._cw_tap.FAST_RECORDS
                and all(self.mask.values())
                and len(maps) == 1
                and type(maps[0]) is SameRecordTransform
                and not maps[0].flattening_enabled
                and maps[0].stream_alias == self.name
            )
        return self._plain_records

    def _generate_record_messages(self, record: dict) -> Iterable[RecordMessage]:
        """RECORD messages; the SDK's per-record conforming is skipped when it has no work.

        Records are built to the schema (strings, an integer, a float, a string map), so with
        every property selected, no stream map and no flattening the SDK's deselection,
        type conforming and mapping return them unchanged: measured, they were a third of
        the per-record time. Otherwise the SDK's path runs as usual.
        """
        if self._plain_record_path():
            yield from super()._generate_record_messages(record)
            return
        yield RecordMessage(
            stream=self.name,
            record=record,
            version=self._stream_version,
            time_extracted=self._extracted_at,
        )

    # -- planning ----------------------------------------------------------------------------

    def plan(self) -> RunPlan:
        """The run's plan; discovery (ListMetrics) happens on first use."""
        if self._run is None:
            self._run = self._make_plan()
        return self._run

    def _run_end(self) -> int:
        """Exclusive end of every window of this run (see :func:`planner.run_end`)."""
        settings = self._cw_tap.settings
        end_date = int(settings.end_date.timestamp()) if settings.end_date else None
        return run_end(self._cw_tap.run_started, settings.delay_seconds, settings.period, end_date)

    def _floors(self) -> Floors:
        """Where windows may start; the tap's history start is kept in state (first run)."""
        settings = self._cw_tap.settings
        stream_state = self.state_manager.stream_state
        start = align_up(int(settings.start_date.timestamp()), settings.period)
        history = parse_bookmark(stream_state.get(HISTORY_START_KEY))
        if history is None and not settings.start_date_explicit:
            history = start
            stream_state[HISTORY_START_KEY] = _iso(start)
        return floors(
            start,
            explicit=settings.start_date_explicit,
            history_start=history,
            last_run_end=parse_bookmark(stream_state.get(LAST_RUN_END_KEY)),
        )

    def _known_bookmarks(self) -> dict[str, int | None]:
        bookmarks: dict[str, int | None] = {}
        for entry in self.state_manager.get_state_partitions() or []:
            series_id = entry.get("context", {}).get("series_id")
            if isinstance(series_id, str):
                bookmarks[series_id] = parse_bookmark(entry.get("replication_key_value"))
        return bookmarks

    def _make_plan(self) -> RunPlan:
        tap = self._cw_tap
        settings = tap.settings
        now, end = tap.run_started, self._run_end()
        floor = self._floors()
        known = self._known_bookmarks()
        resumes = [
            window_start(b, floor.known, settings.period, now, settings.lookback)[0]
            for b in known.values()
            if b is not None
        ]
        recently = use_recently_active(settings.recently_active, resumes, floor.new, now)
        self.recently_active_used = recently
        series = [
            found
            for region in tap.regions
            for namespace in settings.namespaces
            for found in discover_series(
                tap.client_for(region),
                region,
                namespace,
                settings.dimensions,
                tap.usage,
                recently_active=recently,
                linked_accounts=settings.include_linked_accounts,
            )
        ]
        if not recently:
            self._prune_state(series, now)
        plan = plan_run(
            series,
            known,
            floor=floor,
            now=now,
            end=end,
            period=settings.period,
            statistics=settings.statistics,
            lookback=settings.lookback,
        )
        # A STATE carries every series' bookmark: one per 10,000 rows (the SDK's pace) made
        # STATE output grow with rows x series (13 MB on 10,000 series x 1 hour). A run killed
        # between two STATEs repeats more rows, and loses none; the final STATE is always out.
        self.STATE_MSG_FREQUENCY = max(
            type(self).STATE_MSG_FREQUENCY, self.STATE_ROWS_PER_SERIES * len(plan.windows)
        )
        self._log_plan(plan, recently)
        return plan

    def _prune_state(self, listed: list[Series], now: int) -> None:
        """Forget series ListMetrics no longer shows and whose bookmark is past the horizon.

        Such a series has had no data for two weeks; should it return, it starts as a new
        series would. Without this, STATE grows with every instance ever seen.
        """
        alive = {s.series_id for s in listed}
        oldest = now - DISCOVERY_HORIZON

        def keep(entry: dict) -> bool:
            series_id = entry.get("context", {}).get("series_id")
            if series_id in alive:
                return True
            bookmark = parse_bookmark(entry.get("replication_key_value"))
            return bookmark is not None and bookmark >= oldest

        if dropped := self.state_manager.prune(keep):
            self.logger.info("Forgot %d series not seen for over 15 days", dropped)

    def _log_plan(self, plan: RunPlan, recently: bool) -> None:
        settings = self._cw_tap.settings
        if not plan.series:
            names = settings.namespaces
            self.logger.warning(
                "No metrics found in namespace%s %s in %s%s: ListMetrics shows only series "
                "with data in the last %s. Nothing to sync.",
                "s" if len(names) > 1 else "",
                ", ".join(map(repr, names)),
                ", ".join(self._cw_tap.regions),
                f" with dimensions {dict(settings.dimensions)}" if settings.dimensions else "",
                "three hours (RecentlyActive)" if recently else "two weeks",
            )
            return
        self.logger.info(
            "Discovered %d series in %s%s; %d due up to %s: %d GetMetricData calls planned, "
            "%d metric-requests",
            len(plan.series),
            ", ".join(settings.namespaces)
            + (f" ({', '.join(self._cw_tap.regions)})" if len(self._cw_tap.regions) > 1 else ""),
            " (RecentlyActive=PT3H)" if recently else "",
            len(plan.windows),
            _iso(plan.end),
            len(plan.calls),
            plan.billed_metric_requests,
        )
        if plan.clamped:
            oldest = retention_floor(settings.period, self._cw_tap.run_started)
            self.logger.warning(
                "%d series start at %s, later than their bookmark or start_date: CloudWatch "
                "keeps %d-second data only that long; older periods cannot be fetched",
                plan.clamped,
                _iso(align_up(oldest, settings.period)),
                settings.period,
            )

    # -- fetching ----------------------------------------------------------------------------

    def _points(self, plan: RunPlan, position: int) -> list[DataPoint]:
        """Take the calls up to the last one carrying ``position``'s queries; hand its points."""
        if self._buffer is None:
            starts = {w.position: w.start for w in plan.windows}
            self._buffer = PointBuffer(starts, plan.end, self._cw_tap.settings.statistics)
        if self._pipeline is None:
            self._progress = ProgressMeter(len(plan.calls), monotonic())
            self._pipeline = self._start_pipeline(plan)
        last = plan.last_call[position]
        while self._next_call <= last:
            self._take_call(plan, self._pipeline)
            self._next_call += 1
        if self._next_call >= len(plan.calls):
            self._pipeline.close()
        return self._buffer.pop(position)

    def stop_fetching(self) -> None:
        """Cancel calls fetched ahead and not yet started (the run ended or failed)."""
        if self._pipeline is not None:
            self._pipeline.close()

    def _start_pipeline(self, plan: RunPlan) -> CallPipeline[dict[str, QueryResult]]:
        tap = self._cw_tap
        settings = tap.settings

        def fetch(index: int) -> dict[str, QueryResult]:
            call = plan.calls[index]
            client = tap.client_for(call.group or tap.regions[0])
            return fetch_call(client, call, plan.series, settings.period, tap.usage)

        return CallPipeline(fetch, len(plan.calls), settings.max_workers)

    def _take_call(self, plan: RunPlan, pipeline: CallPipeline[dict[str, QueryResult]]) -> None:
        settings = self._cw_tap.settings
        fetched = pipeline.take()
        index, results = fetched.index, fetched.value
        call = plan.calls[index]
        self._extracted_at = fetched.extracted_at
        assert self._buffer is not None
        self._buffer.add(call, results)
        complete = sorted({q.position for q in call.queries if plan.last_call[q.position] == index})
        if settings.fetch_units and self.mask[("properties", "unit")]:
            self._fill_units(plan, complete)
        datapoints = sum(len(r.timestamps) for r in results.values())
        self._datapoints += datapoints
        self.logger.debug(
            "GetMetricData call %d/%d: %d queries, %d datapoints in %.2fs",
            index + 1,
            len(plan.calls),
            len(call.queries),
            datapoints,
            fetched.seconds,
        )
        assert self._progress is not None
        line = self._progress.update(monotonic(), index + 1, self._datapoints)
        if line:
            self.logger.info(line)

    def _fill_units(self, plan: RunPlan, positions: list[int]) -> None:
        """Look up the unit of each complete series that has data and no known unit."""
        assert self._buffer is not None
        if self._units is None:
            self._units = UnitLookup(self._cw_tap.client_for, self._cw_tap.usage)
        wanted: dict[Series, int] = {}
        states: dict[Series, dict] = {}
        for position in positions:
            last = self._buffer.last_timestamp(position)
            if last is None:
                continue
            series = plan.series[position]
            if series.account_id:
                continue  # GetMetricStatistics cannot address another account's series
            state = self.state_manager.get_context_state({"series_id": series.series_id})
            if not state.get("unit"):
                wanted[series] = last
                states[series] = state
        for series, unit in self._units.lookup(wanted).items():
            states[series]["unit"] = unit
