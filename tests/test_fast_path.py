"""The fast output path writes exactly what the SDK's plain path writes (but time_extracted)."""

from __future__ import annotations

import gc
import io
import json
from contextlib import redirect_stdout
from typing import Any

import pytest
from singer_sdk.singerlib.encoding.simple import (
    RecordMessage,
    SimpleSingerWriter,
    StateMessage,
)

from tap_cloudwatch_metrics import streams
from tap_cloudwatch_metrics.tap import SYNC_GC_THRESHOLDS, TapCloudWatchMetrics
from tap_cloudwatch_metrics.writer import FastSingerWriter, SnapshotStateWriter
from tests.conftest import NOW as NOW_DT
from tests.fakes import FAKE_CONFIG, FakeCloudWatch, make_fake_tap, run_sync

NOW = int(NOW_DT.timestamp())
HOUR = 3600
NS = FAKE_CONFIG["cloudwatch_metrics_namespace"]


class PlainTap(TapCloudWatchMetrics):
    """The SDK's own writer, state writer and per-record conforming."""

    message_writer_class = SimpleSingerWriter
    FAST_RECORDS = False


pytestmark = pytest.mark.usefixtures("offline")


def fleet() -> FakeCloudWatch:
    fake = FakeCloudWatch(now=NOW)
    fake.add_many(NS, "CPU", 30, start=NOW - 3 * HOUR, end=NOW + 3 * HOUR)
    fake.add_series(NS, "Odd", {"Name": 'quote " comma, eq= ünï'}, {NOW - 1800: [1e300, -0.0]})
    return fake


def without_time_extracted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k != "time_extracted"} for m in messages]


def two_runs(tap_class: type[TapCloudWatchMetrics]) -> list:
    config = {"statistics": ["Average", "Maximum", "SampleCount"], "lookback": 2}
    outputs = []
    state = None
    for now in (NOW, NOW + HOUR):
        out = run_sync(make_fake_tap(config, fleet(), state=state, now=now, tap_class=tap_class))
        outputs.append(out)
        state = out.final_state
    return outputs


def test_fast_and_plain_paths_write_the_same_messages() -> None:
    fast = two_runs(TapCloudWatchMetrics)
    plain = two_runs(PlainTap)

    assert isinstance(fast[0].tap.message_writer, FastSingerWriter)
    assert isinstance(fast[0].tap.state_writer, SnapshotStateWriter)
    assert not isinstance(plain[0].tap.message_writer, FastSingerWriter)
    for fast_run, plain_run in zip(fast, plain, strict=True):
        assert len(fast_run.records) > 300
        assert without_time_extracted(fast_run.messages) == without_time_extracted(
            plain_run.messages
        )


class Descriptor(io.RawIOBase):
    """What reaches the file descriptor (below the stdout buffer)."""

    def __init__(self) -> None:
        self.data = b""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


def test_records_stay_buffered_until_a_state_flushes_them() -> None:
    descriptor = Descriptor()
    stdout = io.TextIOWrapper(io.BufferedWriter(descriptor, buffer_size=1 << 16))
    writer = FastSingerWriter()
    with redirect_stdout(stdout):
        writer.write_message(RecordMessage(stream="metrics", record={"value": 1.5}))
        # Nothing reached the descriptor: a crash now loses the record, and no STATE covers it.
        assert descriptor.data == b""
        writer.write_message(StateMessage(value={"bookmarks": {}}))
    lines = descriptor.data.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["RECORD", "STATE"]


def test_mid_run_state_is_paced_by_the_number_of_series() -> None:
    fake = FakeCloudWatch(now=NOW)
    fake.add_many(NS, "CPU", 3_000, start=NOW - 2 * HOUR, end=NOW, step=300)
    out = run_sync(make_fake_tap({"start_date": None, "fetch_units": False}, fake, now=NOW))
    # 33,000 rows of 3,000 series: the SDK's pace (every 10,000 rows) would write 3 mid-run
    # STATEs of up to 3,000 bookmarks; at 5 rows a series (every 15,000) there are 2.
    assert len(out.records) == 33_000
    records_before_state = []
    count = 0
    for message in out.messages:
        if message["type"] == "RECORD":
            count += 1
        elif message["type"] == "STATE":
            records_before_state.append(count)
    assert records_before_state == [15_000, 30_000, 33_000, 33_000]


def test_a_sync_collects_garbage_less_often_and_restores_the_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SYNC_GC_THRESHOLDS hold while rows are fetched and written, and only then."""
    seen: list[tuple[int, ...]] = []
    real_fetch = streams.fetch_call

    def fetch_call(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.get_threshold())
        return real_fetch(*args, **kwargs)

    monkeypatch.setattr(streams, "fetch_call", fetch_call)
    before = gc.get_threshold()
    out = run_sync(make_fake_tap({}, fleet(), now=NOW))
    assert out.records
    assert seen and set(seen) == {SYNC_GC_THRESHOLDS}
    assert gc.get_threshold() == before != SYNC_GC_THRESHOLDS
