"""The boto3 session and CloudWatch client, configured the way this tap needs them.

* Timestamps parse straight to aware UTC datetimes: botocore's default parses every one into
  local time through dateutil, which was most of the client's CPU on GetMetricData responses.
* Adaptive retries back off and rate-limit on throttling and 5xx instead of failing a run.
* GetMetricData's successful JSON answers are decoded by :mod:`responses` (msgspec), not by
  botocore's per-value model walk; request validation is off, since every request is built by
  the tap from validated settings.
* Missing region or credentials are reported as settings problems before any API call.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import boto3
import botocore
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

from tap_cloudwatch_metrics import __version__
from tap_cloudwatch_metrics.responses import decode_get_metric_data
from tap_cloudwatch_metrics.settings import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SESSION_NAME,
    Settings,
    SettingsError,
)

UTC = dt.timezone.utc
CONNECT_TIMEOUT = 10


def utc_timestamp_parser(value: Any) -> dt.datetime | Any:
    """Parse a wire timestamp (epoch number or ISO string) to an aware UTC datetime.

    A value that is no timestamp is handed back as it came: raising here would abort the
    parse of a whole GetMetricData page over one bad datapoint, where the fast decoder's path
    skips that datapoint with a warning (:func:`responses.normalise_points`). Both paths must
    read an answer the same way.
    """
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, UTC)
        return parse_timestamp(value).astimezone(UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        return value


def make_session(settings: Settings) -> boto3.Session:
    """A session from explicit keys, a named profile, or boto3's default credential chain."""
    try:
        session = boto3.Session(
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
            profile_name=settings.aws_profile,
            region_name=settings.region or (settings.regions[0] if settings.regions else None),
        )
    except botocore.exceptions.ProfileNotFound:
        raise SettingsError(
            "aws_profile",
            f"profile {settings.aws_profile!r} is not in the AWS config or credentials files",
        ) from None
    if settings.aws_assume_role_arn:
        session = _assume_role(session, settings)
    session._session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=utc_timestamp_parser
    )
    return session


def _assume_role(source: boto3.Session, settings: Settings) -> boto3.Session:
    """A session whose credentials come from STS AssumeRole and renew themselves.

    botocore's refreshable credentials call AssumeRole again when less than 15 minutes of the
    current ones are left (10 minutes: before any further request), so a backfill that runs
    for hours never signs with expired credentials. The source credentials are whatever the
    settings give (keys, profile or the default chain).
    """
    source_credentials = source.get_credentials()
    if source_credentials is None:
        raise SettingsError(
            "aws_assume_role_arn",
            "no source credentials to assume the role with: set aws_access_key_id and "
            "aws_secret_access_key, aws_profile, or configure the default AWS credential chain",
        )
    region = source.region_name

    def sts_client(service_name: str, **kwargs: Any) -> Any:
        return source._session.create_client(service_name, region_name=region, **kwargs)

    extra: dict[str, Any] = {
        "RoleSessionName": settings.aws_assume_role_session_name or DEFAULT_SESSION_NAME,
        "DurationSeconds": settings.aws_assume_role_duration_seconds,
    }
    if settings.aws_assume_role_external_id:
        extra["ExternalId"] = settings.aws_assume_role_external_id
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=sts_client,
        source_credentials=source_credentials,
        role_arn=settings.aws_assume_role_arn,
        extra_args=extra,
    )
    credentials = botocore.credentials.DeferredRefreshableCredentials(
        refresh_using=fetcher.fetch_credentials, method="assume-role"
    )
    core = botocore.session.Session()
    if region:
        core.set_config_variable("region", region)
    core._credentials = credentials
    return boto3.Session(botocore_session=core)


def known_regions(session: boto3.Session) -> frozenset[str]:
    """Every region of every partition where this botocore knows a CloudWatch endpoint."""
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("cloudwatch", partition))
    return frozenset(regions)


def check_session(session: boto3.Session, endpoint_url: str | None = None) -> str:
    """Return the region; refuse a session with no region or no credentials, before any call.

    A region botocore does not know would only fail at the first request, after a minute of
    retried DNS failures; with no custom endpoint it is refused here instead.
    """
    region = session.region_name
    if not region:
        raise SettingsError(
            "region",
            "not set: give region (e.g. us-east-1), or set AWS_REGION / AWS_DEFAULT_REGION, "
            "or use an aws_profile that has a region",
        )
    check_region(session, region, endpoint_url, setting="region")
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise SettingsError("aws_profile", f"credentials could not be loaded: {exc}") from None
    if credentials is None:
        raise SettingsError(
            "aws_access_key_id",
            "no AWS credentials found: set aws_access_key_id and aws_secret_access_key, "
            "aws_profile, or configure the default AWS credential chain",
        )
    return region


def check_region(
    session: boto3.Session, region: str, endpoint_url: str | None, setting: str = "regions"
) -> None:
    """Refuse a region botocore knows no CloudWatch endpoint for (unless one is given)."""
    custom_endpoint = endpoint_url or any(
        os.environ.get(name) for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_CLOUDWATCH")
    )
    if not custom_endpoint and region not in known_regions(session):
        raise SettingsError(
            setting,
            f"{region!r} is not a region where CloudWatch is available (botocore "
            f"{botocore.__version__}), e.g. us-east-1 or eu-west-1; a region newer than this "
            "botocore needs a newer boto3, or aws_endpoint_url",
        )


def make_client(
    session: boto3.Session,
    endpoint_url: str | None,
    *,
    region: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT,
    max_pool: int = 10,
) -> Any:
    """A CloudWatch client; without ``endpoint_url`` botocore honours ``AWS_ENDPOINT_URL*``.

    Adaptive retries: throttling (``Throttling``, ``ThrottlingException``, HTTP 429), 5xx,
    connection resets and timeouts are retried with exponential backoff and full jitter, and
    throttling also slows the client's own request rate, up to ``max_attempts`` in all.
    """
    config = Config(
        retries={"mode": "adaptive", "total_max_attempts": max_attempts},
        user_agent_extra=f"tap-cloudwatch-metrics/{__version__}",
        max_pool_connections=max_pool,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=request_timeout,
        parameter_validation=False,
    )
    client = session.client(
        "cloudwatch", region_name=region, endpoint_url=endpoint_url, config=config
    )
    client.meta.events.register(
        "before-parse.cloudwatch.GetMetricData", _decode_get_metric_data_fast
    )
    return client


def _decode_get_metric_data_fast(
    operation_model: Any,
    response_dict: dict[str, Any],
    customized_response_dict: dict[str, Any],
    **_: Any,
) -> None:
    """Decode a successful JSON GetMetricData body here; botocore then parses an empty one.

    botocore merges ``customized_response_dict`` over its own parse (``endpoint.py``), so the
    result has botocore's shape plus ``ResponseMetadata``; only the body's walk is skipped.
    """
    if response_dict.get("status_code") != 200:
        return
    if operation_model.service_model.resolved_protocol != "json":
        return
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return
    decoded = decode_get_metric_data(body)
    if decoded is None:
        return
    customized_response_dict.update(decoded)
    response_dict["body"] = b"{}"
