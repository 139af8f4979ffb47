"""Keep credentials out of every log line, whoever logs it.

botocore's debug log prints request headers, among them ``X-Amz-Security-Token`` and the
access key id in ``Authorization``. A log-record factory rewrites each record, tracebacks
included, before any handler or formatter sees it, so no logger can leak a configured secret.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterable
from typing import Any

MASK = "**REDACTED**"
_MIN_LENGTH = 4
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by a mask."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def protect(secrets: Iterable[str | None]) -> None:
    """Register secrets to redact from all log records from now on."""
    global _installed  # noqa: PLW0603 - one process-wide factory, installed once
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= _MIN_LENGTH)
        if _installed or not _secrets:
            return
        _install(logging.getLogRecordFactory())
        _installed = True


def _install(previous: Any) -> None:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = previous(*args, **kwargs)
        if not _secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(factory)
