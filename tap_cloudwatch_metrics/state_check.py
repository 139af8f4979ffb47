"""Checking a state before it is trusted: refuse what cannot be read, drop what is not ours.

A state is the only record of what was delivered, so the policy is:

* **Refused** (one line, exit code 2): a state file that is not JSON, or JSON that is not an
  object. Starting over would silently re-read history from ``start_date``, which costs money
  and repeats rows; the user decides instead (fix it, or pass ``{}`` to start fresh).
* **Ignored with a warning**: everything readable that this tap cannot use: another tap's
  streams, a ``metrics`` entry of the wrong shape, partitions without a ``series_id`` context
  (an older or foreign format), bookmarks that are not timestamps, and a single stream-wide
  bookmark (the spec connector's format). The series concerned start as new series do; the
  warning says how many.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STREAM = "metrics"
STREAM_KEYS = ("history_start", "last_run_end")
PARTITION_KEYS = ("replication_key", "replication_key_value", "unit", "progress_markers")


class StateError(ValueError):
    """A state that cannot be used at all."""


@dataclass
class CheckedState:
    """The usable part of a state, and what was left out."""

    state: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def parse_state_text(text: str) -> dict[str, Any]:
    """The state object of a state file's text; StateError if it is not one."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        raise StateError(msg) from None
    if not isinstance(value, dict):
        msg = f"a JSON {type(value).__name__} where a state object was expected"
        raise StateError(msg)
    return value


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is an ISO 8601 timestamp string, as bookmarks are written."""
    if not isinstance(value, str) or not value:
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_state(state: Mapping[str, Any]) -> CheckedState:
    """Keep the ``metrics`` bookmarks that can be used; a warning for each kind left out."""
    checked = CheckedState({})
    if not state:
        return checked
    bookmarks = state.get("bookmarks")
    if not isinstance(bookmarks, Mapping):
        checked.warnings.append(
            "the state has no 'bookmarks' object (not this tap's state?): ignored; every "
            "series starts as a new one"
        )
        return checked
    foreign = sorted(repr(name) for name in bookmarks if name != STREAM)
    if foreign:
        checked.warnings.append(f"state bookmarks of other streams ignored: {', '.join(foreign)}")
    stream = bookmarks.get(STREAM)
    if stream is None:
        return checked
    if not isinstance(stream, Mapping):
        checked.warnings.append(
            f"state bookmarks of '{STREAM}' are a {type(stream).__name__}, not an object: "
            "ignored; every series starts as a new one"
        )
        return checked
    checked.state = {"bookmarks": {STREAM: _check_stream(stream, checked.warnings)}}
    return checked


def _check_stream(stream: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key in STREAM_KEYS:
        if key in stream:
            if is_timestamp(stream[key]):
                kept[key] = stream[key]
            else:
                warnings.append(f"state value {key}={stream[key]!r} is not a timestamp: ignored")
    if "replication_key_value" in stream:
        warnings.append(
            "the state has one bookmark for the whole stream (an older format): ignored; "
            "this tap keeps one per series, and series without one start as new series do"
        )
    partitions = stream.get("partitions")
    if partitions is None:
        return kept
    if not isinstance(partitions, list):
        warnings.append("state 'partitions' is not a list: ignored")
        return kept
    usable = [_partition(entry) for entry in partitions]
    kept["partitions"] = [entry for entry in usable if entry is not None]
    dropped = len(partitions) - len(kept["partitions"])
    if dropped:
        warnings.append(
            f"{dropped} of {len(partitions)} state partitions are not this tap's (no "
            "series_id context, or a bookmark that is not a timestamp): ignored; those series "
            "start as new series do"
        )
    return kept


def _partition(entry: object) -> dict[str, Any] | None:
    if not isinstance(entry, Mapping):
        return None
    context = entry.get("context")
    if not isinstance(context, Mapping) or set(context) != {"series_id"}:
        return None
    if not isinstance(context["series_id"], str) or not context["series_id"]:
        return None
    bookmark = entry.get("replication_key_value")
    if bookmark is not None and not is_timestamp(bookmark):
        return None
    kept = {"context": {"series_id": context["series_id"]}}
    kept.update({key: entry[key] for key in PARTITION_KEYS if key in entry})
    if not isinstance(kept.get("unit"), str | None):
        del kept["unit"]
    return kept
