"""The tap: settings, validation before any API call, and the ``metrics`` stream."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import os
import re
import sys
import time
from functools import cached_property
from typing import Any

import click
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_cloudwatch_metrics.aws import check_region, check_session, make_client, make_session
from tap_cloudwatch_metrics.billing import PlanReport, parse_every
from tap_cloudwatch_metrics.errors import explain
from tap_cloudwatch_metrics.redaction import protect, redact
from tap_cloudwatch_metrics.schedule import steady_state_calls
from tap_cloudwatch_metrics.settings import (
    DEFAULT_DELAY_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_WORKERS,
    DEFAULT_PERIOD,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_ROLE_DURATION,
    DEFAULT_STATISTICS,
    MAX_ATTEMPTS,
    MAX_REQUEST_TIMEOUT,
    MAX_WORKERS,
    SECRET_SETTINGS,
    Settings,
    SettingsError,
    environment_problem,
    parse_settings,
    typed_config,
)
from tap_cloudwatch_metrics.state_check import StateError, check_state, parse_state_text
from tap_cloudwatch_metrics.statistics import ALLOWED_DESCRIPTION
from tap_cloudwatch_metrics.streams import MetricsStream
from tap_cloudwatch_metrics.units import LOOKUP_THREADS
from tap_cloudwatch_metrics.usage import ApiUsage
from tap_cloudwatch_metrics.writer import FastSingerWriter, SnapshotStateWriter

UTC = dt.timezone.utc
# Cyclic GC thresholds during a sync. A run allocates a dict per row, and by default every 700
# allocations start a collection; the oldest generation holds every series, partition state and
# planned query (tens of thousands of objects) and is walked again and again. The tap makes few
# reference cycles, so collecting less often costs no memory: on the benchmark's workload a,
# 3.05 s -> 2.47 s wall, peak RSS 100 -> 101 MB.
SYNC_GC_THRESHOLDS = (50_000, 20, 100)
# The run's notion of "now" (tests replace it to run at a fixed time).
_wall_clock = time.time


def _string_map() -> th.CustomType:
    """A map of string to string, declared so that flattening keeps it (see schema.py)."""
    return th.CustomType({"type": ["object", "null"], "additionalProperties": {"type": "string"}})


class TapCloudWatchMetrics(Tap):
    """Amazon CloudWatch metrics: every series of a namespace, incrementally, per series."""

    name = "tap-cloudwatch-metrics"
    # Output through msgspec with buffered RECORD lines (see writer.py); records skip the
    # SDK's conforming when it would not change them. Both off gives the SDK's plain path.
    message_writer_class = FastSingerWriter
    FAST_RECORDS = True

    config_jsonschema = th.PropertiesList(
        th.Property(
            "aws_access_key_id",
            th.StringType,
            secret=True,
            description="AWS access key id. Omit both keys to use boto3's default credential "
            "chain (environment, profile, SSO, web identity, instance role).",
        ),
        th.Property(
            "aws_secret_access_key",
            th.StringType,
            secret=True,
            description="AWS secret access key, with aws_access_key_id.",
        ),
        th.Property(
            "aws_session_token",
            th.StringType,
            secret=True,
            description="Session token of temporary credentials.",
        ),
        th.Property(
            "aws_profile",
            th.StringType,
            description="Named profile from the AWS config/credentials files.",
        ),
        th.Property(
            "aws_assume_role_arn",
            th.StringType,
            description="IAM role to assume with STS before reading CloudWatch, e.g. "
            "arn:aws:iam::123456789012:role/CloudWatchReader. The keys, profile or default "
            "chain are the source credentials; the role's are renewed before they expire.",
        ),
        th.Property(
            "aws_assume_role_external_id",
            th.StringType,
            secret=True,
            description="External id the role's trust policy requires, if any.",
        ),
        th.Property(
            "aws_assume_role_session_name",
            th.StringType,
            description="Role session name (shows in CloudTrail). Default: tap-cloudwatch-metrics.",
        ),
        th.Property(
            "aws_assume_role_duration_seconds",
            th.IntegerType,
            default=DEFAULT_ROLE_DURATION,
            description="Lifetime of each set of role credentials, 900 to 43200 seconds "
            "(the role's maximum session duration applies).",
        ),
        th.Property(
            "aws_endpoint_url",
            th.StringType,
            description="Custom CloudWatch endpoint (e.g. a local moto server). "
            "AWS_ENDPOINT_URL_CLOUDWATCH / AWS_ENDPOINT_URL are honoured when unset.",
        ),
        th.Property(
            "region",
            th.StringType,
            description="AWS region, e.g. us-east-1. Falls back to AWS_REGION, "
            "AWS_DEFAULT_REGION or the profile's region.",
        ),
        th.Property(
            "cloudwatch_metrics_namespace",
            th.StringType,
            description="CloudWatch namespace whose metrics are all discovered, e.g. AWS/EC2. "
            "Required unless namespaces is given.",
        ),
        th.Property(
            "namespaces",
            th.ArrayType(th.StringType),
            description='More namespaces to read, e.g. ["AWS/EC2", "AWS/RDS"] (with '
            "cloudwatch_metrics_namespace, if set).",
        ),
        th.Property(
            "regions",
            th.ArrayType(th.StringType),
            description='Regions to read, e.g. ["us-east-1", "eu-west-1"] (with region, '
            "if set). Default: region alone.",
        ),
        th.Property(
            "include_linked_accounts",
            th.BooleanType,
            default=False,
            description="In a CloudWatch monitoring account, also read the accounts linked to "
            "it (ListMetrics IncludeLinkedAccounts); rows carry account_id.",
        ),
        th.Property(
            "period",
            th.IntegerType,
            default=DEFAULT_PERIOD,
            description="Aggregation period in seconds: 1, 5, 10, 20, 30 (high resolution) or "
            "a multiple of 60.",
        ),
        th.Property(
            "statistics",
            th.ArrayType(th.StringType),
            default=list(DEFAULT_STATISTICS),
            description=f"Statistics to fetch, one row each: {ALLOWED_DESCRIPTION}.",
        ),
        th.Property(
            "dimensions",
            _string_map(),
            description="Select only the series with exactly this dimension set, e.g. "
            '{"InstanceId": "i-0abc"}. Omit for every series of the namespace.',
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="Where series without a bookmark start (UTC). Default: 60 minutes "
            "before the first run.",
        ),
        th.Property(
            "end_date",
            th.DateTimeType,
            description="Exclusive end for bounded backfills (UTC). Default: the last closed "
            "period.",
        ),
        th.Property(
            "delay_seconds",
            th.IntegerType,
            default=DEFAULT_DELAY_SECONDS,
            description="A period is fetched only this long after it closes, so CloudWatch "
            "has aggregated its late samples.",
        ),
        th.Property(
            "lookback",
            th.IntegerType,
            default=0,
            description="Re-read this many periods before each series' bookmark, for data that "
            "arrives late; re-read rows keep their key, so an upserting target replaces them.",
        ),
        th.Property(
            "max_workers",
            th.IntegerType,
            default=DEFAULT_MAX_WORKERS,
            description=f"GetMetricData calls in flight at once (1 to {MAX_WORKERS}). Above 1, "
            "the next calls are fetched while the rows of one are written: 2 to 4 help when "
            "calls wait on the network. Answers are used in plan order, so rows and state are "
            "those of a sequential run.",
        ),
        th.Property(
            "max_attempts",
            th.IntegerType,
            default=DEFAULT_MAX_ATTEMPTS,
            description=f"Attempts per request, the first included (1 to {MAX_ATTEMPTS}). "
            "Throttling, HTTP 429 and 5xx answers, connection resets and timeouts are retried "
            "with exponential backoff and jitter (botocore's adaptive mode); then the run fails "
            "with its state at the last rows delivered.",
        ),
        th.Property(
            "request_timeout",
            th.IntegerType,
            default=DEFAULT_REQUEST_TIMEOUT,
            description=f"Seconds to wait for an answer to a request (1 to {MAX_REQUEST_TIMEOUT}) "
            "before it counts as a failed attempt.",
        ),
        th.Property(
            "recently_active",
            th.BooleanType,
            description="List only series published to in the last three hours "
            "(ListMetrics RecentlyActive=PT3H). Unset: automatic, when every window starts "
            "within those three hours.",
        ),
        th.Property(
            "fetch_units",
            th.BooleanType,
            default=True,
            description="Look up each series' unit once with GetMetricStatistics (one extra "
            "request per new series); false leaves unit null.",
        ),
    ).to_dict()

    # For the CLI's error messages (how many attempts a failed request had).
    _max_attempts_in_use = DEFAULT_MAX_ATTEMPTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.run_started = int(_wall_clock())
        self._settings: Settings | None = None
        self.usage = ApiUsage()
        super().__init__(*args, **kwargs)
        if isinstance(self.message_writer, FastSingerWriter):
            self._state_writer = SnapshotStateWriter(self.message_writer)

    # -- settings ----------------------------------------------------------------------------

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check settings semantically (one clear line per problem) before the JSON schema."""
        protect(
            value for name in SECRET_SETTINGS if isinstance(value := self._config.get(name), str)
        )
        if raise_errors:
            self._settings = parse_settings(self._config, self._now())
            self._config = typed_config(self._config)
            type(self)._max_attempts_in_use = self._settings.max_attempts
        try:
            return super()._validate_config(raise_errors=raise_errors)
        except ConfigValidationError as exc:
            # The SDK's schema check, for what parse_settings leaves to it (stream maps, batch
            # config): one line like every other refusal instead of the SDK's log lines.
            raise _schema_refusal(exc.errors) from None

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.run_started, UTC)

    @property
    def settings(self) -> Settings:
        """The validated settings."""
        if self._settings is None:
            self._settings = parse_settings(self.config, self._now())
        return self._settings

    # -- AWS ---------------------------------------------------------------------------------

    @cached_property
    def _session_and_region(self) -> tuple[Any, str]:
        settings = self.settings
        session = make_session(settings)
        region = check_session(session, settings.aws_endpoint_url)
        for other in settings.regions:
            check_region(session, other, settings.aws_endpoint_url)
        return session, region

    @property
    def region(self) -> str:
        """The region the run reads from."""
        return self._session_and_region[1]

    @property
    def regions(self) -> tuple[str, ...]:
        """Every region this run reads, the session's own first when no list is given."""
        return self.settings.regions or (self.region,)

    @cached_property
    def _clients(self) -> dict[str, Any]:
        return {}

    def client_for(self, region: str) -> Any:
        """The CloudWatch client of ``region`` (created on first use)."""
        client = self._clients.get(region)
        if client is None:
            client = self._clients[region] = self._new_client(region)
        return client

    @property
    def client(self) -> Any:
        """The CloudWatch client of the first region."""
        return self.client_for(self.regions[0])

    def _new_client(self, region: str) -> Any:
        settings = self.settings
        return make_client(
            self._session_and_region[0],
            settings.aws_endpoint_url,
            region=region,
            max_attempts=settings.max_attempts,
            request_timeout=settings.request_timeout,
            max_pool=settings.max_workers + LOOKUP_THREADS,
        )

    # -- streams -----------------------------------------------------------------------------

    def discover_streams(self) -> list[Stream]:
        """One stream, ``metrics``; its series are discovered when it syncs."""
        return [MetricsStream(self)]

    def sync_all(self) -> None:
        """Sync (with :data:`SYNC_GC_THRESHOLDS`), then log what the run cost in requests."""
        thresholds = gc.get_threshold()
        gc.set_threshold(*SYNC_GC_THRESHOLDS)
        try:
            super().sync_all()
        finally:
            gc.set_threshold(*thresholds)
            for stream in self.streams.values():
                if isinstance(stream, MetricsStream):
                    stream.stop_fetching()
            self.logger.info(self.usage.summary())

    def plan_report(self, every: int | None = None) -> PlanReport:
        """What a sync would do now, from ListMetrics alone (no datapoint is fetched)."""
        stream = self.streams["metrics"]
        assert isinstance(stream, MetricsStream)
        plan = stream.plan()
        settings = self.settings
        due = [plan.series[w.position] for w in plan.windows]
        lookups = 0
        if settings.fetch_units and stream.mask[("properties", "unit")]:
            lookups = sum(
                1
                for series in due
                if not (
                    stream.state_manager.find_context_state({"series_id": series.series_id}) or {}
                ).get("unit")
            )
        return PlanReport(
            namespace=", ".join(settings.namespaces),
            region=", ".join(self.regions),
            period=settings.period,
            statistics=settings.statistics,
            series_listed=len(plan.series),
            series_due=len(due),
            window_end=dt.datetime.fromtimestamp(plan.end, UTC).isoformat(),
            recently_active=stream.recently_active_used,
            list_metrics_calls=self.usage.list_metrics_calls,
            get_metric_data_calls=len(plan.calls),
            billed_metric_requests=plan.billed_metric_requests,
            minimum_metric_requests=len(due) * len(settings.statistics),
            unit_lookups_at_most=lookups,
            every=every,
            steady_calls=(
                sum(
                    steady_state_calls(
                        sum(1 for s in plan.series if s.region == region),
                        every,
                        settings.period,
                        settings.statistics,
                    )
                    for region in {s.region for s in plan.series}
                )
                if every
                else None
            ),
        )

    @classmethod
    def plan_command(cls) -> click.Command:
        """``tap-cloudwatch-metrics plan``: the bill of the next run, before running it."""

        @click.command(
            name="plan",
            help="Show what the next sync would request from CloudWatch and what it costs, "
            "without fetching any datapoint (only ListMetrics is called).",
        )
        @click.option(
            "--config",
            multiple=True,
            default=(),
            callback=cls.cb_config,
            help="Configuration file location or 'ENV' to use environment variables.",
        )
        @click.option("--state", type=click.File(), help="State file of the last run.")
        @click.option("--every", help="Schedule for a monthly estimate, e.g. 15m, 1h, 1d.")
        def plan(config: Any, state: Any, every: str | None) -> None:
            try:
                seconds = parse_every(every) if every else None
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
            tap = cls(
                config=config.config,
                state=json.load(state) if state else None,
                parse_env_config=config.parse_env,
            )
            click.echo(tap.plan_report(seconds).render())

        return plan

    def load_state(self, state: dict[str, Any]) -> None:
        """Load only what this tap can use of ``state``; say what was left out (state_check)."""
        checked = check_state(state)
        for warning in checked.warnings:
            self.logger.warning("State: %s", warning)
        super().load_state(checked.state)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command (and ``plan``), with known failures as one line and no traceback.

        Bad settings and unreadable state files exit with code 2 before any API call; failures
        during the run (see :mod:`errors`) exit with code 1. The traceback of those is logged
        at DEBUG level. Anything else is a bug and keeps its traceback.
        """
        command = super().get_singer_command()
        main = command.main

        def main_with_clear_errors(args: Any = None, **kwargs: Any) -> Any:
            argv = list(sys.argv[1:] if args is None else args)
            try:
                _check_state_argument(argv)
                if {"ENV", "--config=ENV"} & set(argv) and (
                    problem := environment_problem(os.environ, cls._env_var_prefix)
                ):
                    raise problem
                if argv[:1] == ["plan"]:
                    return cls.plan_command().main(argv[1:], prog_name=f"{cls.name} plan", **kwargs)
                return main(argv, **kwargs)
            except SettingsError as exc:
                click.echo(redact(f"{cls.name}: {exc}"), err=True)
                sys.exit(2)
            except Exception as exc:
                message = explain(exc, max_attempts=cls._max_attempts_in_use)
                if message is None:
                    raise
                logging.getLogger(cls.name).debug("Traceback of the failure", exc_info=True)
                one_line = " ".join(message.split())
                click.echo(redact(f"{cls.name}: error: {one_line}"), err=True)
                sys.exit(1)

        command.main = main_with_clear_errors  # type: ignore[method-assign]
        return command


def _schema_refusal(errors: list[str]) -> SettingsError:
    """A SettingsError naming the first setting the SDK's JSON-schema check refused."""
    first = " ".join((errors or ["the config does not match the settings schema"])[0].split())
    named = re.search(r"in config\['([^']+)'\]", first)
    return SettingsError(named.group(1) if named else "config", first)


def _check_state_argument(argv: list[str]) -> None:
    """Refuse an unreadable ``--state`` file in one line, before the SDK reads it."""
    path = None
    for index, arg in enumerate(argv):
        if arg == "--state" and index + 1 < len(argv):
            path = argv[index + 1]
        elif arg.startswith("--state="):
            path = arg.split("=", 1)[1]
    if path is None:
        return
    try:
        with open(path, encoding="utf-8") as file:
            parse_state_text(file.read())
    except OSError as exc:
        raise SettingsError("--state", f"{path!r} cannot be read: {exc.strerror}") from None
    except (StateError, UnicodeDecodeError) as exc:
        raise SettingsError(
            "--state",
            f"{path!r} is {exc}; refusing to start rather than re-read everything from "
            "start_date. Fix it, or pass a file holding {} to start afresh",
        ) from None


if __name__ == "__main__":
    TapCloudWatchMetrics.cli()
