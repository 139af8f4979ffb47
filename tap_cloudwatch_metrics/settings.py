"""Settings: parsed and checked before any API call, so a wrong value costs nothing.

Every refusal is a :class:`SettingsError` whose message is one line naming the setting and
what is allowed. Values of secret settings never appear in a message.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tap_cloudwatch_metrics.statistics import ALLOWED_DESCRIPTION, statistic_error

HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
DEFAULT_PERIOD = 300
DEFAULT_STATISTICS = ("Average",)
# CloudWatch keeps aggregating late samples into a period for minutes after it closes; peers use
# 5 minutes (Telegraf) to 10 (cloudwatch_exporter). 5 minutes keeps data fresh and complete.
DEFAULT_DELAY_SECONDS = 300
DEFAULT_LOOKBACK = dt.timedelta(minutes=60)
MAX_DIMENSIONS = 30
# GetMetricData calls in flight at once. One by default: measured on 10,000 series, fetching
# ahead cost 3 to 7 MB of peak memory (over the 100 MB bound) and, against a fake with no
# network latency, time. Against AWS, where a call waits on the network, 2 to 4 overlap that
# wait with writing rows. CloudWatch allows 50 GetMetricData requests a second per account and
# region, shared by every client, hence the cap.
DEFAULT_MAX_WORKERS = 1
MAX_WORKERS = 16
# Attempts per request, the first included. botocore waits a random time up to 2^n seconds
# (capped at 20) before retry n: ten attempts ride out about two minutes of throttling.
DEFAULT_MAX_ATTEMPTS = 10
MAX_ATTEMPTS = 20
# Seconds to wait for an answer (botocore's read timeout); a 500-query call takes a few.
DEFAULT_REQUEST_TIMEOUT = 60
MAX_REQUEST_TIMEOUT = 900
SECRET_SETTINGS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_assume_role_external_id",
    }
)
# AssumeRole: a role ARN, and what STS allows for the session.
# Patterns are ASCII and matched whole (fullmatch): ``\d`` and ``\w`` would take any script's
# letters and digits, and ``$`` a trailing newline, which botocore or STS refuse mid-run.
_ROLE_ARN = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
DEFAULT_SESSION_NAME = "tap-cloudwatch-metrics"
DEFAULT_ROLE_DURATION = 3600
MIN_ROLE_DURATION = 900
MAX_ROLE_DURATION = 43200
_STRING_SETTINGS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_profile",
    "aws_endpoint_url",
    "region",
    "aws_assume_role_arn",
    "aws_assume_role_external_id",
    "aws_assume_role_session_name",
)


_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", re.ASCII)
# A whole number written as text (env-var settings): ASCII digits only, and few enough that
# int() reads them (it refuses "²", which str.isdigit accepts, and over 4,300 digits).
_INTEGER_TEXT = re.compile(r"\s*(\d{1,18})\s*", re.ASCII)


# Settings typed integer or boolean in the config schema, the SDK's own included: text forms of
# them ("300", "true") are accepted here and handed on typed (see typed_config).
INTEGER_SETTINGS = (
    "period",
    "delay_seconds",
    "lookback",
    "max_workers",
    "max_attempts",
    "request_timeout",
    "aws_assume_role_duration_seconds",
    "flattening_max_depth",
    "flattening_max_key_length",
)
BOOLEAN_SETTINGS = ("fetch_units", "include_linked_accounts", "flattening_enabled")
# What the SDK reads as true from an environment variable; anything else it reads as false.
ENV_TRUE = frozenset({"true", "1", "yes", "on"})
ENV_FALSE = frozenset({"false", "0", "no", "off"})
MAX_FLATTENING = 10_000


def _integer_from_text(value: object) -> object:
    """``value`` as an int when it is a whole number written as text, else unchanged."""
    if isinstance(value, str) and (match := _INTEGER_TEXT.fullmatch(value)):
        return int(match.group(1))
    return value


def _boolean_from_text(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return value


def typed_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with integer and boolean settings written as text given their JSON type.

    parse_settings accepts ``"300"`` and ``"true"`` (hand-written JSON, other tools' configs);
    the SDK then checks the config against its JSON schema, which does not. Empty text and
    ``"auto"`` mean unset and are dropped, as parse_settings reads them.
    """
    typed = dict(config)
    for name in INTEGER_SETTINGS:
        if typed.get(name) == "":
            del typed[name]
        elif name in typed:
            typed[name] = _integer_from_text(typed[name])
    for name in BOOLEAN_SETTINGS:
        if name in typed:
            typed[name] = _boolean_from_text(typed[name])
    active = typed.get("recently_active")
    if isinstance(active, str):
        if active.strip().lower() in {"", "auto"}:
            del typed["recently_active"]
        else:
            typed["recently_active"] = _boolean_from_text(active)
    return typed


def environment_problem(environ: Mapping[str, str], prefix: str) -> SettingsError | None:
    """The first integer or boolean setting in environment variables the SDK would misread.

    With ``--config ENV`` the SDK converts ``<PREFIX><SETTING>`` values itself before the tap
    sees them: ``int()`` raises a bare ValueError (a traceback) on ``abc``, reads ``"٣"`` as
    3, and any boolean text but true/1/yes/on as false, so ``maybe`` would silently switch a
    setting off.
    """
    for name in INTEGER_SETTINGS:
        value = environ.get(prefix + name.upper())
        if value is not None and not _INTEGER_TEXT.fullmatch(value):
            return SettingsError(
                name, f"{prefix + name.upper()}={value!r} is not a whole number (0-9 digits)"
            )
    for name in (*BOOLEAN_SETTINGS, "recently_active"):
        value = environ.get(prefix + name.upper())
        if value is not None and value.strip().lower() not in ENV_TRUE | ENV_FALSE:
            return SettingsError(name, f"{prefix + name.upper()}={value!r}: must be true or false")
    return None


class SettingsError(ValueError):
    """A setting is missing or has a value CloudWatch (or this tap) cannot use."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"Invalid setting '{setting}': {problem}")
        self.setting = setting


@dataclass(frozen=True)
class Settings:
    """The validated, typed view of the tap's config."""

    namespaces: tuple[str, ...]
    period: int
    statistics: tuple[str, ...]
    dimensions: Mapping[str, str] | None
    start_date: dt.datetime
    end_date: dt.datetime | None
    delay_seconds: int
    fetch_units: bool
    lookback: int = 0
    max_workers: int = DEFAULT_MAX_WORKERS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    recently_active: bool | None = None
    start_date_explicit: bool = False
    region: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    aws_profile: str | None = None
    aws_endpoint_url: str | None = None
    aws_assume_role_arn: str | None = None
    aws_assume_role_external_id: str | None = field(default=None, repr=False)
    aws_assume_role_session_name: str | None = None
    aws_assume_role_duration_seconds: int = DEFAULT_ROLE_DURATION
    regions: tuple[str, ...] = ()
    include_linked_accounts: bool = False

    @property
    def namespace(self) -> str:
        """The first namespace (the spec's single ``cloudwatch_metrics_namespace``)."""
        return self.namespaces[0]


def parse_settings(config: Mapping[str, Any], now: dt.datetime) -> Settings:
    """Check every setting and return them typed; the first bad one raises SettingsError."""
    strings = {name: _optional_string(config, name) for name in _STRING_SETTINGS}
    if bool(strings["aws_access_key_id"]) != bool(strings["aws_secret_access_key"]):
        missing = "aws_secret_access_key" if strings["aws_access_key_id"] else "aws_access_key_id"
        raise SettingsError(
            missing,
            "aws_access_key_id and aws_secret_access_key must be set together "
            "(or neither, to use the default AWS credential chain)",
        )
    if strings["aws_session_token"] and not strings["aws_access_key_id"]:
        raise SettingsError(
            "aws_session_token", "needs aws_access_key_id and aws_secret_access_key as well"
        )
    region = strings["region"]
    if region and not _REGION.fullmatch(region):
        raise SettingsError("region", f"{region!r} is not an AWS region name such as us-east-1")
    endpoint = strings["aws_endpoint_url"]
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise SettingsError("aws_endpoint_url", f"{endpoint!r} must start with http:// or https://")

    _check_role(strings)
    _check_sdk_settings(config)

    explicit_start = _parse_date(config, "start_date")
    start_date = explicit_start or now - DEFAULT_LOOKBACK
    end_date = _parse_date(config, "end_date")
    if end_date is not None and end_date <= start_date:
        raise SettingsError("end_date", "must be later than start_date")

    return Settings(
        namespaces=_namespaces(config),
        period=_period(config.get("period", DEFAULT_PERIOD)),
        statistics=_statistics(config.get("statistics", list(DEFAULT_STATISTICS))),
        dimensions=_dimensions(config.get("dimensions")),
        start_date=start_date,
        end_date=end_date,
        delay_seconds=_delay(config.get("delay_seconds", DEFAULT_DELAY_SECONDS)),
        fetch_units=_boolean(config, "fetch_units", default=True),
        regions=_regions(config.get("regions"), region),
        include_linked_accounts=_boolean(config, "include_linked_accounts", default=False),
        lookback=_lookback(config.get("lookback", 0)),
        max_workers=_bounded_integer(config, "max_workers", DEFAULT_MAX_WORKERS, 1, MAX_WORKERS),
        aws_assume_role_duration_seconds=_bounded_integer(
            config,
            "aws_assume_role_duration_seconds",
            DEFAULT_ROLE_DURATION,
            MIN_ROLE_DURATION,
            MAX_ROLE_DURATION,
        ),
        max_attempts=_bounded_integer(
            config, "max_attempts", DEFAULT_MAX_ATTEMPTS, 1, MAX_ATTEMPTS
        ),
        request_timeout=_bounded_integer(
            config, "request_timeout", DEFAULT_REQUEST_TIMEOUT, 1, MAX_REQUEST_TIMEOUT
        ),
        recently_active=_optional_boolean(config, "recently_active"),
        start_date_explicit=explicit_start is not None,
        **strings,
    )


def _check_sdk_settings(config: Mapping[str, Any]) -> None:
    """The SDK's flattening settings, refused here in the same one-line form as the rest."""
    _boolean(config, "flattening_enabled", default=False)
    _bounded_integer(config, "flattening_max_depth", 0, 0, MAX_FLATTENING)
    _bounded_integer(config, "flattening_max_key_length", 1, 1, MAX_FLATTENING)
    separator = config.get("flattening_separator")
    if separator is not None and (not isinstance(separator, str) or not separator):
        raise SettingsError("flattening_separator", f"{separator!r}: must be a non-empty string")


def _check_role(strings: Mapping[str, str | None]) -> None:
    arn = strings["aws_assume_role_arn"]
    if arn and not _ROLE_ARN.fullmatch(arn):
        raise SettingsError(
            "aws_assume_role_arn",
            f"{arn!r} is not an IAM role ARN such as arn:aws:iam::123456789012:role/Reader",
        )
    for name in ("aws_assume_role_external_id", "aws_assume_role_session_name"):
        if strings[name] and not arn:
            raise SettingsError(name, "needs aws_assume_role_arn as well")
    session_name = strings["aws_assume_role_session_name"]
    if session_name and not _SESSION_NAME.fullmatch(session_name):
        raise SettingsError(
            "aws_assume_role_session_name",
            f"{session_name!r}: 2 to 64 letters, digits or the characters + = , . @ _ -",
        )


def _optional_string(config: Mapping[str, Any], name: str) -> str | None:
    value = config.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        shown = "" if name in SECRET_SETTINGS else f" (got {value!r})"
        raise SettingsError(name, f"must be a string{shown}")
    return value


MAX_NAMESPACE_LENGTH = 255


def _namespaces(config: Mapping[str, Any]) -> tuple[str, ...]:
    """``cloudwatch_metrics_namespace`` and ``namespaces`` together, in order, once each."""
    found: list[str] = []
    single = config.get("cloudwatch_metrics_namespace")
    if single is not None and single != "":
        found.append(_one_namespace("cloudwatch_metrics_namespace", single))
    many = config.get("namespaces")
    if many is not None and many != []:
        if not isinstance(many, list | tuple):
            raise SettingsError("namespaces", f"{many!r}: must be a list of namespaces")
        found.extend(_one_namespace("namespaces", value) for value in many)
    if not found:
        raise SettingsError(
            "cloudwatch_metrics_namespace",
            "required (or namespaces): the CloudWatch namespace to read, e.g. AWS/EC2 or MyApp",
        )
    return tuple(dict.fromkeys(found))


def _one_namespace(setting: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(setting, f"{value!r}: a namespace is a non-empty string, e.g. AWS/EC2")
    if len(value) > MAX_NAMESPACE_LENGTH:
        raise SettingsError(setting, f"at most {MAX_NAMESPACE_LENGTH} characters")
    return value


def _regions(value: object, region: str | None) -> tuple[str, ...]:
    """``region`` and ``regions`` together, in order, once each; () for the session's own."""
    if value is None or value == []:
        return (region,) if region else ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SettingsError("regions", f"{value!r}: must be a list of AWS region names")
    for item in value:
        if not _REGION.fullmatch(item):
            raise SettingsError("regions", f"{item!r} is not an AWS region name such as us-east-1")
    return tuple(dict.fromkeys([*([region] if region else []), *value]))


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _period(value: object) -> int:
    allowed = "1, 5, 10, 20, 30 (high resolution) or a positive multiple of 60 (seconds)"
    value = _integer_from_text(value)
    if not _is_integer(value):
        raise SettingsError("period", f"{value!r} is not an integer; allowed: {allowed}")
    assert isinstance(value, int)
    if value in HIGH_RESOLUTION_PERIODS or (value > 0 and value % 60 == 0):
        return value
    raise SettingsError("period", f"{value} is not allowed; allowed: {allowed}")


def _statistics(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise SettingsError(
            "statistics", f"must be a non-empty list of statistics; allowed: {ALLOWED_DESCRIPTION}"
        )
    result: list[str] = []
    for item in value:
        if problem := statistic_error(item):
            raise SettingsError(
                "statistics", f"{item!r}: {problem}; allowed: {ALLOWED_DESCRIPTION}"
            )
        if item not in result:
            result.append(item)
    return tuple(result)


def _dimensions(value: object) -> Mapping[str, str] | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping):
        raise SettingsError(
            "dimensions", 'must be a map of dimension name to value, e.g. {"InstanceId": "i-0abc"}'
        )
    if len(value) > MAX_DIMENSIONS:
        raise SettingsError("dimensions", f"at most {MAX_DIMENSIONS} dimensions")
    for name, dim_value in value.items():
        if not isinstance(name, str) or not name or not isinstance(dim_value, str) or not dim_value:
            raise SettingsError(
                "dimensions",
                f"{name!r}: names and values must be non-empty strings, "
                'e.g. {"InstanceId": "i-0abc"}',
            )
    return dict(value)


def _delay(value: object) -> int:
    value = _integer_from_text(value)
    if not _is_integer(value) or value < 0:  # type: ignore[operator]
        raise SettingsError("delay_seconds", f"{value!r}: must be a whole number of seconds >= 0")
    assert isinstance(value, int)
    return value


def _boolean(config: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = config.get(name)
    if value is None:
        return default
    value = _boolean_from_text(value)
    if isinstance(value, bool):
        return value
    raise SettingsError(name, f"{value!r}: must be true or false")


def _optional_boolean(config: Mapping[str, Any], name: str) -> bool | None:
    """True, false, or unset (None: decided automatically)."""
    value = config.get(name)
    if value is None or (isinstance(value, str) and value.strip().lower() in {"", "auto"}):
        return None
    value = _boolean_from_text(value)
    if isinstance(value, bool):
        return value
    raise SettingsError(name, f"{value!r}: must be true, false or unset (automatic)")


MAX_LOOKBACK = 1440


def _bounded_integer(
    config: Mapping[str, Any], name: str, default: int, low: int, high: int
) -> int:
    """A whole number in ``[low, high]``; numeric strings are accepted (env-var settings)."""
    value = config.get(name)
    if value is None or value == "":
        return default
    value = _integer_from_text(value)
    if not _is_integer(value) or not low <= value <= high:  # type: ignore[operator]
        raise SettingsError(name, f"{value!r}: must be a whole number from {low} to {high}")
    assert isinstance(value, int)
    return value


def _lookback(value: object) -> int:
    value = _integer_from_text(value)
    if not _is_integer(value) or not 0 <= value <= MAX_LOOKBACK:  # type: ignore[operator]
        raise SettingsError(
            "lookback", f"{value!r}: must be a whole number of periods from 0 to {MAX_LOOKBACK}"
        )
    assert isinstance(value, int)
    return value


def _parse_date(config: Mapping[str, Any], name: str) -> dt.datetime | None:
    value = config.get(name)
    if value is None or value == "":
        return None
    allowed = "an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T00:00:00Z"
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SettingsError(name, f"{value!r} is not {allowed}") from None
    else:
        raise SettingsError(name, f"{value!r} is not {allowed}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    try:
        # 0001-01-01T00:00+01:00 is a valid ISO string whose UTC time is before year 1.
        parsed = parsed.astimezone(dt.timezone.utc)
        finite = math.isfinite(parsed.timestamp())
    except (OverflowError, ValueError, OSError):
        finite = False
    if not finite:
        raise SettingsError(name, f"{value!r} is not {allowed} within years 1 to 9999 in UTC")
    return parsed
