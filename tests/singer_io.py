"""Run a tap built from a config in-process and read back its Singer messages."""

from __future__ import annotations

import json
from typing import Any

from tap_cloudwatch_metrics.tap import TapCloudWatchMetrics
from tests.fakes import SyncOutput, bookmarks, epoch
from tests.fakes import run_sync as run_tap

__all__ = ["bookmarks", "epoch", "parse_messages", "run_sync"]


def parse_messages(text: str) -> list[dict[str, Any]]:
    """Singer messages of a tap's stdout."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_sync(config: dict[str, Any], state: dict[str, Any] | None = None) -> SyncOutput:
    """Sync every stream of a new tap with ``config`` (and ``state``)."""
    return run_tap(TapCloudWatchMetrics(config=config, state=state, parse_env_config=False))
