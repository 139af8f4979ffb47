"""What went wrong, in one line a user can act on, for the failures a scheduled run meets.

botocore's exceptions name an error code and a Python class; a data engineer reading a failed
job's log needs the setting or IAM permission to fix instead. :func:`explain` maps the known
failures (credentials, expired tokens, missing permissions, bad parameters, throttling and
server errors that outlasted the retries, unreachable endpoints, broken CloudWatch answers)
to one line. Unknown exceptions return None: they are bugs, and keep their traceback.

Every failure here happens while syncing, after the last STATE the tap wrote: rows up to that
STATE are delivered and bookmarked, nothing later is, so a rerun resumes without loss.
"""

from __future__ import annotations

import botocore.exceptions

from tap_cloudwatch_metrics.fetcher import CloudWatchDataError

AUTH_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "IncompleteSignature",
        "InvalidSignatureException",
        "AuthFailure",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
EXPIRED_CODES = frozenset(
    {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
)
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"}
)
PARAMETER_CODES = frozenset(
    {
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidParameterCombination",
        "InvalidParameterCombinationException",
        "MissingParameter",
        "MissingRequiredParameter",
        "MissingRequiredParameterException",
        "ValidationError",
        "ValidationException",
        "InvalidNextToken",
        "InvalidNextTokenException",
        "LimitExceeded",
        "LimitExceededException",
    }
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)
PERMISSIONS = (
    "cloudwatch:ListMetrics and cloudwatch:GetMetricData "
    "(and cloudwatch:GetMetricStatistics for units)"
)
RESUME = "Rows up to the last STATE are delivered; the next run resumes from there."


def explain(exc: BaseException, *, max_attempts: int) -> str | None:
    """One line for a known failure; None for anything else (a bug: keep its traceback)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return _client_error(exc)
    if isinstance(exc, CloudWatchDataError):
        return f"{exc}. {RESUME}"
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | (botocore.exceptions.PartialCredentialsError)
    ):
        return (
            f"No usable AWS credentials ({exc}): set aws_access_key_id and "
            "aws_secret_access_key, aws_profile, or the default credential chain."
        )
    if isinstance(exc, botocore.exceptions.CredentialRetrievalError):
        return f"AWS credentials could not be loaded: {exc}."
    return _transport_error(exc, max_attempts=max_attempts)


# Transport failures, most specific first: (exception, what to say). ``{url}`` is the endpoint
# and ``{attempts}`` the attempts made.
_TRANSPORT: tuple[tuple[type[BaseException], str], ...] = (
    (
        botocore.exceptions.SSLError,
        "TLS failed talking to {url}: {exc}. Check aws_endpoint_url and the proxy.",
    ),
    (
        botocore.exceptions.ConnectTimeoutError,
        "Could not connect to {url} within the timeout, {attempts} attempts: check region, "
        "aws_endpoint_url and the network.",
    ),
    (
        botocore.exceptions.EndpointConnectionError,
        "Could not reach {url}: check region and aws_endpoint_url (and DNS / the network "
        "from this machine).",
    ),
    (
        botocore.exceptions.ReadTimeoutError,
        "{url} did not answer within request_timeout, {attempts} attempts: raise "
        "request_timeout or max_attempts, or lower max_workers.",
    ),
    (
        botocore.exceptions.HTTPClientError,
        "The connection to {url} kept failing ({exc}), {attempts} attempts: check the network "
        "and proxy.",
    ),
)


def _transport_error(exc: BaseException, *, max_attempts: int) -> str | None:
    if isinstance(exc, BrokenPipeError):
        return "The target stopped reading the tap's output (broken pipe)."
    url = getattr(exc, "kwargs", {}).get("endpoint_url") or "the CloudWatch endpoint"
    for kind, template in _TRANSPORT:
        if isinstance(exc, kind):
            said = template.format(url=url, attempts=max_attempts, exc=exc)
            return f"{said} {RESUME}"
    return None


def _client_error_kind(code: str, status: object) -> str:
    """Which advice a ClientError gets (see ``_CLIENT_ERRORS``)."""
    for kind, codes in (
        ("auth", AUTH_CODES),
        ("expired", EXPIRED_CODES),
        ("denied", DENIED_CODES),
        ("parameter", PARAMETER_CODES),
        ("throttled", THROTTLING_CODES),
    ):
        if code in codes:
            return kind
    if status == HTTP_TOO_MANY_REQUESTS:
        return "throttled"
    if isinstance(status, int) and status >= HTTP_SERVER_ERROR:
        return "server"
    return "other"


HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
_CLIENT_ERRORS = {
    "auth": "AWS rejected the credentials on {operation} ({code}): check aws_access_key_id and "
    "aws_secret_access_key, or aws_profile / the default credential chain.",
    "expired": "The AWS credentials have expired ({code} on {operation}): renew "
    "aws_session_token, or the profile's or credential chain's credentials, and rerun.",
    "denied": "Access denied on {operation} ({code}): the credentials need the IAM permission "
    "cloudwatch:{operation}; the tap uses " + PERMISSIONS + ".",
    "parameter": "CloudWatch refused a parameter of {operation} ({code}){detail}.",
    "throttled": "CloudWatch still throttled {operation} after {attempts} attempts ({code}): "
    "raise max_attempts, lower max_workers or run less often. " + RESUME,
    "server": "CloudWatch failed {operation} with HTTP {status} ({code}) after {attempts} "
    "attempts{detail}. " + RESUME,
    "other": "CloudWatch refused {operation} ({code}){detail}. " + RESUME,
}


def _client_error(exc: botocore.exceptions.ClientError) -> str:
    response = exc.response or {}
    error = response.get("Error") or {}
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "").strip().rstrip(".")
    metadata = response.get("ResponseMetadata") or {}
    status = metadata.get("HTTPStatusCode")
    return _CLIENT_ERRORS[_client_error_kind(code, status)].format(
        operation=exc.operation_name or "a CloudWatch request",
        code=code,
        status=status,
        attempts=int(metadata.get("RetryAttempts") or 0) + 1,
        detail=f": {message}" if message else "",
    )
