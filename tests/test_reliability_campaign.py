"""The fault-injection campaign (``scripts/reliability.py``), quick-sized, in this process.

Every row must deliver every datapoint (nothing lost), never two values for one key, never a
STATE ahead of its records, and no run may fail where the retries should have absorbed the
fault. The campaign's checks are shown to catch a run that drops a record.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fakes import SyncOutput

ROOT = Path(__file__).resolve().parent.parent
SEED = 20260115
# Scenarios per row: ``--quick``'s datasets, one scenario fewer than ``--quick`` runs, so that the
# file stays near 15 s on a busy 2-core machine (each in-process run builds a fresh boto3
# session and client, about a quarter of a second of it).
RUNS = 2


def load_script() -> ModuleType:
    """``scripts/reliability.py`` as a module (``scripts`` is not a package)."""
    name = "reliability_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "reliability.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reliability() -> ModuleType:
    return load_script()


def test_quick_campaign_loses_nothing_and_never_conflicts(reliability: ModuleType) -> None:
    tallies = reliability.run_campaign(RUNS, SEED, quick=True)
    table = reliability.render(tallies)
    assert len(tallies) == 7, table
    for tally in tallies:
        detail = f"{tally.fault}:\n" + "\n".join(tally.problems[:10]) + f"\n{table}"
        assert tally.runs >= 1, detail
        assert tally.expected > 0, detail
        assert tally.lost == 0, detail
        assert tally.conflicting == 0, detail
        assert tally.delivered == tally.expected, detail
        assert tally.committed_lost == 0, detail
        assert tally.state_ahead == 0, detail
        assert tally.unexpected_failures == 0, detail
        assert tally.ok, detail
    # The rows meant to fail a run did fail runs (else they tested nothing).
    by_fault = {t.fault: t for t in tallies}
    failing = [f for f in by_fault if "(run fails)" in f]
    assert len(failing) == 2
    assert all(by_fault[f].failed_runs >= RUNS for f in failing), table


def test_the_campaign_catches_a_run_that_drops_a_record(
    reliability: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Sabotage: every run loses its first RECORD on the way to the target. The checks must
    count those datapoints lost and the STATEs that cover them as ahead of their records."""
    real = reliability.run_once

    def dropping(*args: Any, **kwargs: Any) -> SyncOutput:
        output = real(*args, **kwargs)
        first = next((i for i, m in enumerate(output.messages) if m["type"] == "RECORD"), None)
        if first is not None:
            del output.messages[first]
        return output

    monkeypatch.setattr(reliability, "run_once", dropping)
    with reliability.campaign_patches():
        campaign = reliability.Campaign(SEED, 2, 1, tmp_path, reliability.QUICK_DATASETS)
        tally = campaign.bursts("sabotaged", reliability.THROTTLING)
    assert tally.lost >= 2
    assert tally.state_ahead >= 2
    assert not tally.ok
    assert tally.delivered == tally.expected - tally.lost
