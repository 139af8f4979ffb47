"""The demo's chart: every series of the warehouse file, one panel per metric, as a PNG.

Read back from what the target wrote (``output/demo/*.jsonl``), not from the tap, so the chart
shows what actually landed: a gap or a repeated row would show as one. Series are labelled by
their dimensions; each statistic has its own line style.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LINE_STYLES = ("-", "--", ":", "-.")


def read_rows(folder: Path) -> list[dict[str, Any]]:
    """Every row of every JSONL file in ``folder``."""
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    return rows


def series_label(row: dict[str, Any]) -> str:
    """``InstanceId=i-0a1...`` (all dimensions, name order), or ``(no dimensions)``."""
    dims = row.get("dimensions") or {}
    if isinstance(dims, str):  # flattened targets keep it as JSON text
        dims = json.loads(dims)
    return ", ".join(f"{k}={v}" for k, v in sorted(dims.items())) or "(no dimensions)"


def group_lines(
    rows: Iterable[dict[str, Any]],
) -> dict[str, dict[tuple[str, str], list[tuple[dt.datetime, float]]]]:
    """metric -> (series label, statistic) -> points by time; repeated keys counted once."""
    seen: set[tuple[Any, ...]] = set()
    panels: dict[str, dict[tuple[str, str], list[tuple[dt.datetime, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in rows:
        key = (row.get("series_id"), row.get("statistic"), row.get("period"), row["timestamp"])
        if key in seen:
            continue
        seen.add(key)
        when = dt.datetime.fromisoformat(str(row["timestamp"]).replace("Z", "+00:00"))
        line = (series_label(row), str(row.get("statistic")))
        panels[str(row.get("metric_name"))][line].append((when, float(row["value"])))
    for lines in panels.values():
        for points in lines.values():
            points.sort()
    return panels


def render_chart(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Write the PNG; None when there is nothing to draw."""
    panels = group_lines(rows)
    if not panels:
        return None
    import matplotlib  # noqa: PLC0415 - only the demo needs it

    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = sorted(panels)
    figure, axes = plt.subplots(
        len(names), 1, figsize=(14, 3.2 * len(names)), sharex=True, squeeze=False
    )
    for axis, name in zip(axes[:, 0], names, strict=True):
        units = {str(r.get("unit")) for r in rows if r.get("metric_name") == name and r.get("unit")}
        statistics = sorted({stat for _, stat in panels[name]})
        labels = sorted({label for label, _ in panels[name]})
        for (label, statistic), points in sorted(panels[name].items()):
            style = LINE_STYLES[statistics.index(statistic) % len(LINE_STYLES)]
            color = f"C{labels.index(label) % 10}"  # one colour per series, a style per statistic
            times, values = zip(*points, strict=True)
            axis.plot(
                times, values, style, color=color, linewidth=1.2, label=f"{label} ({statistic})"
            )
        axis.set_title(name + (f" ({', '.join(sorted(units))})" if units else ""), loc="left")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.timezone.utc))
    axes[-1, 0].set_xlabel("period start (UTC)")
    figure.suptitle(f"{len(rows):,} rows read back from the warehouse file")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
