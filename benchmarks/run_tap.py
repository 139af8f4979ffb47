"""Child process: the tap's real CLI (``--config <file>``) against the benchmark's fake.

Usage (the parent runs it): ``run_tap.py <workload json> <summary path> <config path>``.
Singer messages go to stdout; logs to stderr; API counts and the fake's cost to the summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import child_harness


def main(argv: list[str]) -> None:
    with child_harness("tap", argv) as (workload, fake, rest):
        (config_path,) = rest
        import tap_cloudwatch_metrics.tap as tap_module  # noqa: PLC0415

        tap_module._wall_clock = lambda: float(workload.now)
        real_make_client = tap_module.make_client

        def make_client(*args, **kwargs):
            return fake.attach(real_make_client(*args, **kwargs))

        tap_module.make_client = make_client
        tap_module.TapCloudWatchMetrics.cli(args=["--config", config_path])


if __name__ == "__main__":
    main(sys.argv[1:])
