"""Run a tap in-process and read back the Singer messages it wrote."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics


@dataclass
class SyncResult:
    """The messages of one run, in order, by type."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tap: TapCloudWatchMetrics | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [m["record"] for m in self.messages if m["type"] == "RECORD"]

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "SCHEMA"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def keys(self) -> list[tuple[str, str, int, str]]:
        """Primary keys of the records, in emission order."""
        return [(r["series_id"], r["statistic"], r["period"], r["timestamp"]) for r in self.records]


def parse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_sync(config: dict[str, Any], state: dict[str, Any] | None = None) -> SyncResult:
    """Sync every stream of a new tap; the messages it wrote to stdout come back parsed."""
    tap = TapCloudWatchMetrics(config=config, state=state, parse_env_config=False)
    out = io.StringIO()
    with redirect_stdout(out):
        tap.sync_all()
    return SyncResult(parse_messages(out.getvalue()), tap)


def bookmarks(state: dict[str, Any]) -> dict[str, str]:
    """series_id -> replication_key_value of a STATE value."""
    partitions = state.get("bookmarks", {}).get("metrics", {}).get("partitions", [])
    return {
        p["context"]["series_id"]: p["replication_key_value"]
        for p in partitions
        if "replication_key_value" in p
    }
