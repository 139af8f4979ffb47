"""Stream maps and flattening with ``dimensions``: the SCHEMA and every RECORD agree."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import NOW as NOW_DT
from tests.fakes import FakeCloudWatch, make_fake_tap, run_sync

NOW = int(NOW_DT.timestamp())
DIMS = {"InstanceId": "i-0abc", "Device": "a,b=c", "Zone": "zone ü"}


pytestmark = pytest.mark.usefixtures("offline")


def _run(**extra: Any) -> Any:
    fake = FakeCloudWatch()
    fake.add_series(
        "Fake/App",
        "CPU",
        DIMS,
        {t: [float(t % 7)] for t in range(NOW - 7200, NOW + 600, 60)},
    )
    config = {"start_date": "2026-01-15T11:00:00Z", "delay_seconds": 0, **extra}
    return run_sync(make_fake_tap(config, fake, now=NOW))


def _conforms(record: dict[str, Any], properties: dict[str, Any]) -> None:
    assert set(record) <= set(properties), set(record) - set(properties)
    for name, value in record.items():
        types = properties[name].get("type", [])
        types = [types] if isinstance(types, str) else types
        kind = {str: "string", float: "number", int: "integer", dict: "object", type(None): "null"}
        assert kind[type(value)] in types or (kind[type(value)] == "integer" and "number" in types)


def test_a_map_that_adds_a_dimension_column_and_drops_another_column() -> None:
    maps = {
        "metrics": {
            "instance_id": "record['dimensions'].get('InstanceId')",
            "device": "record['dimensions']['Device']",
            "dimensions_key": "__NULL__",
        }
    }
    out = _run(stream_maps=maps)
    properties = out.schemas[0]["schema"]["properties"]
    assert "instance_id" in properties
    assert "device" in properties
    assert "dimensions_key" not in properties
    assert len(out.records) == 12
    for record in out.records:
        _conforms(record, properties)
        assert record["instance_id"] == "i-0abc"
        assert record["device"] == "a,b=c"
        assert record["dimensions"] == DIMS
        assert "dimensions_key" not in record


def test_a_map_filtering_rows_by_dimension() -> None:
    out = _run(stream_maps={"metrics": {"__filter__": "record['value'] > 3"}})
    assert out.records
    assert all(r["value"] > 3 for r in out.records)
    assert len(out.records) < 12


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_flattening_keeps_dimensions_as_one_json_column(depth: int) -> None:
    out = _run(flattening_enabled=True, flattening_max_depth=depth)
    properties = out.schemas[0]["schema"]["properties"]
    assert properties["dimensions"]["type"] in ("string", ["string", "null"], ["null", "string"])
    assert len(out.records) == 12
    for record in out.records:
        _conforms(record, properties)
        assert json.loads(record["dimensions"]) == DIMS


def test_flattening_and_a_map_together() -> None:
    maps = {"metrics": {"zone": "record['dimensions']['Zone']"}}
    out = _run(stream_maps=maps, flattening_enabled=True, flattening_max_depth=1)
    properties = out.schemas[0]["schema"]["properties"]
    for record in out.records:
        _conforms(record, properties)
        assert record["zone"] == "zone ü"
        assert json.loads(record["dimensions"]) == DIMS
