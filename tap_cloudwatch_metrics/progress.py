"""Progress of a long run, for the log: calls done of planned, datapoints, and time left.

A backfill can run for an hour; its log should say how far it is without a line per call
(thousands on a large namespace). :class:`ProgressMeter` answers a line at most every
``interval`` seconds, and always for the last call. It is pure: the clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_INTERVAL = 5.0


@dataclass
class ProgressMeter:
    """When to report, and what: fed after each GetMetricData call with running totals."""

    total_calls: int
    started: float
    interval: float = DEFAULT_INTERVAL
    _last_report: float = field(default=-1.0, init=False)

    def update(self, now: float, calls_done: int, datapoints: int) -> str | None:
        """A progress line if one is due (every ``interval`` seconds, and at the end)."""
        final = calls_done >= self.total_calls
        reference = self.started if self._last_report < 0 else self._last_report
        if not final and now - reference < self.interval:
            return None
        self._last_report = now
        return describe(calls_done, self.total_calls, datapoints, now - self.started)


def describe(calls_done: int, total_calls: int, datapoints: int, elapsed: float) -> str:
    """The progress line, e.g. ``... 60,000 datapoints in 4.0 s (15,000/s), about 12 s left``.

    Durations under 10 s keep a decimal, so a quick run does not claim it took 0 s.
    """
    share = calls_done / total_calls if total_calls else 1.0
    rate = datapoints / elapsed if elapsed > 0 else 0.0
    if calls_done >= total_calls:
        left = "done"
    elif calls_done == 0 or elapsed <= 0:
        left = "time left unknown"
    else:
        left = f"about {_duration(elapsed * (total_calls - calls_done) / calls_done)} left"
    return (
        f"Progress: GetMetricData calls {calls_done}/{total_calls} ({share:.0%}), "
        f"{datapoints:,} datapoints in {_duration(elapsed)} ({rate:,.0f}/s), {left}"
    )


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{max(0.0, seconds):.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
