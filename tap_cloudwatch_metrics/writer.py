"""Singer output without the per-message costs that made the SDK's writer the bottleneck.

Measured on 10,000 series (DESIGN.md section 3 and benchmarks/): the SDK flushed stdout after
every message, converted each STATE message with ``dataclasses.asdict`` and deep-copied the
whole state after every STATE to compare the next one with it. Here messages are encoded with
msgspec; RECORD lines stay in the stdout buffer and every other message flushes it (so a STATE
never reaches the target before the records it covers); and a STATE is compared with the last
one by its encoded bytes. The JSON is the same as the SDK's: datetimes as ``isoformat()``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
from typing import Any

import msgspec
from singer_sdk.helpers._state import StateWriter
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.encoding.simple import Message, RecordMessage, StateMessage


def _to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else None
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_to_json)


def _plain(value: Any) -> Any:
    """Datetimes nested in a message, as the SDK writes them (msgspec's own form differs)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


class FastSingerWriter(GenericSingerWriter[bytes, Message]):
    """Buffered msgspec JSON lines on stdout; flushed at every message but RECORD."""

    def __init__(self) -> None:
        self._extracted: tuple[dt.datetime | None, str] = (None, "")

    def serialize_message(self, message: Message) -> bytes:
        """One JSON line."""
        if isinstance(message, RecordMessage):
            return self._record_line(
                message.stream, message.record, message.version, message.time_extracted
            )
        if isinstance(message, StateMessage):
            data = {"type": "STATE", "value": message.value}
        else:
            data = {k: _plain(v) for k, v in message.to_dict().items()}
        return _encoder.encode(data) + b"\n"

    def _record_line(
        self,
        stream: str,
        record: dict[str, Any],
        version: int | None,
        time_extracted: dt.datetime | None,
    ) -> bytes:
        data: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": record}
        if version is not None:
            data["version"] = version
        if time_extracted is not None:
            if time_extracted is not self._extracted[0]:
                self._extracted = (time_extracted, time_extracted.isoformat())
            data["time_extracted"] = self._extracted[1]
        return _encoder.encode(data) + b"\n"

    def write_record(
        self,
        stream: str,
        record: dict[str, Any],
        version: int | None,
        time_extracted: dt.datetime | None,
    ) -> None:
        """A RECORD line without building a message object (the stream's hot path)."""
        self.write_line(self._record_line(stream, record, version, time_extracted), flush=False)

    def write_message(self, message: Message) -> None:
        """Write one message; anything but a RECORD flushes what came before it."""
        self.write_line(
            self.serialize_message(message), flush=not isinstance(message, RecordMessage)
        )

    @staticmethod
    def write_line(line: bytes, *, flush: bool) -> None:
        """Write an encoded line to the current stdout (binary when it has a buffer)."""
        out = sys.stdout
        binary = getattr(out, "buffer", None)
        if binary is None:
            out.write(line.decode("utf-8"))
            if flush:
                out.flush()
            return
        binary.write(line)
        if flush:
            binary.flush()


class SnapshotStateWriter(StateWriter):
    """Writes a STATE only when it changed, comparing encoded bytes instead of deep copies."""

    def __init__(self, message_writer: FastSingerWriter) -> None:
        super().__init__(message_writer)
        self._writer = message_writer
        self._last_line: bytes | None = None

    def write_state(self, state: dict) -> None:
        """Emit ``state`` unless it is exactly the last one emitted."""
        line = self._writer.serialize_message(StateMessage(value=state))
        if line != self._last_line:
            self._writer.write_line(line, flush=True)
            self._last_line = line
