"""Configured secrets are masked in log messages, their arguments and tracebacks."""

from __future__ import annotations

import logging

import pytest

from tap_cloudwatch_metrics.redaction import MASK, protect, redact


def test_secrets_are_masked_in_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-value-for-redaction-test"
    protect([secret, None, ""])
    logger = logging.getLogger("some.library")
    caplog.set_level(logging.DEBUG)

    logger.debug("headers: %s", {"X-Amz-Security-Token": secret})
    logger.info(f"inline {secret}")
    try:
        raise ValueError(f"bad token {secret}")
    except ValueError:
        logger.exception("request failed")

    text = caplog.text
    assert secret not in text
    assert text.count(MASK) >= 3
    assert "ValueError: bad token" in text
    assert redact(f"a {secret} b") == f"a {MASK} b"


def test_short_values_are_not_treated_as_secrets() -> None:
    protect(["ab"])
    assert redact("tab cab") == "tab cab"
