"""The state check: any JSON object is either used, or left out with a warning; never a crash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_cloudwatch_metrics.state_check import (
    StateError,
    check_state,
    is_timestamp,
    parse_state_text,
)

STAMP = "2026-01-15T11:55:00+00:00"
GOOD = {
    "context": {"series_id": "abc"},
    "replication_key": "timestamp",
    "replication_key_value": STAMP,
    "unit": "Percent",
}

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_partition = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"context": st.one_of(_json, st.fixed_dictionaries({"series_id": _json}))},
        optional={"replication_key_value": st.one_of(_json, st.just(STAMP)), "unit": _json},
    ),
)
_state = st.fixed_dictionaries(
    {},
    optional={
        "bookmarks": st.one_of(
            _json,
            st.fixed_dictionaries(
                {},
                optional={
                    "metrics": st.one_of(
                        _json,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "partitions": st.one_of(_json, st.lists(_partition, max_size=5)),
                                "last_run_end": st.one_of(_json, st.just(STAMP)),
                                "history_start": st.one_of(_json, st.just(STAMP)),
                            },
                        ),
                    ),
                    "other": _json,
                },
            ),
        ),
        "currently_syncing": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(state=_state)
def test_any_state_is_checked_without_error_and_keeps_only_usable_entries(state: dict) -> None:
    checked = check_state(state)
    assert all(isinstance(w, str) and "\n" not in w for w in checked.warnings)
    if not checked.state:
        return
    stream = checked.state["bookmarks"]["metrics"]
    assert set(checked.state["bookmarks"]) == {"metrics"}
    for key in ("last_run_end", "history_start"):
        if key in stream:
            assert is_timestamp(stream[key])
    for entry in stream.get("partitions", []):
        assert set(entry["context"]) == {"series_id"}
        assert isinstance(entry["context"]["series_id"], str)
        value = entry.get("replication_key_value")
        assert value is None or is_timestamp(value)
        assert entry.get("unit") is None or isinstance(entry["unit"], str)


def test_this_tap_s_own_state_passes_unchanged() -> None:
    state: dict[str, Any] = {
        "bookmarks": {
            "metrics": {
                "partitions": [GOOD, {"context": {"series_id": "def"}, "unit": None}],
                "history_start": STAMP,
                "last_run_end": STAMP,
            }
        }
    }
    checked = check_state(state)
    assert checked.state == state
    assert checked.warnings == []


def test_an_empty_state_is_a_first_run_without_warnings() -> None:
    assert check_state({}).state == {}
    assert check_state({}).warnings == []
    assert parse_state_text("  \n") == {}


@pytest.mark.parametrize("text", ["{", "[]", "null", "3", '"x"', "{'single': 'quotes'}"])
def test_text_that_is_not_a_state_object_is_refused(text: str) -> None:
    with pytest.raises(StateError):
        parse_state_text(text)
