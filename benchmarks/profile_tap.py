"""Where the tap's time goes: cProfile of one workload run in-process, same fake as the benchmark.

    .venv/bin/python benchmarks/profile_tap.py [--workload a|b] [--quick] [--top 15]

Runs the tap's CLI (``--config``) in this process under cProfile with stdout sent to
/dev/null, then prints the top functions by cumulative and by own (tottime) time, and the
fake's share (its ``before-send`` handler). Writes ``benchmarks/profile-<workload>.txt`` and
the raw ``.prof`` next to it (for snakeviz / pstats).

cProfile sees only the thread it runs in, so by default ``ThreadPoolExecutor`` is replaced by
an inline executor before the tap is imported: work the tap hands to threads (unit lookups)
runs in the main thread and shows up in the profile instead of as lock waits. With the GIL
and an in-process fake that changes little; ``--keep-threads`` profiles the tap as it is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    FULL,
    QUICK,
    HandlerTimer,
    build_fake,
    isolated_env,
    refuse_network,
    tap_source_version,
)

HERE = Path(__file__).resolve().parent


class InlineExecutor(concurrent.futures.Executor):
    """Runs each task at submit, in the calling thread (so the profiler sees it)."""

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", choices=["a", "b"], default="a")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--output", type=Path, help="default: benchmarks/profile-<workload>.txt")
    parser.add_argument("--keep-threads", action="store_true", help="do not inline thread pools")
    args = parser.parse_args(argv)
    if not args.keep_threads:
        concurrent.futures.ThreadPoolExecutor = InlineExecutor
    workload = (QUICK if args.quick else FULL)[args.workload]
    output = args.output or HERE / f"profile-{workload.name}{'-quick' if args.quick else ''}.txt"

    version = tap_source_version()
    fetch_units = os.environ.get("BENCH_FETCH_UNITS", "true") == "true"
    with tempfile.TemporaryDirectory(prefix="cw-profile-") as tmp:
        os.environ.clear()
        os.environ.update(isolated_env(Path(tmp)))
        config_path = Path(tmp) / "config.json"
        config_path.write_text(
            json.dumps(
                {
                    **workload.tap_config(),
                    "fetch_units": fetch_units,
                }
            )
        )

        fake = build_fake(workload)
        timer = HandlerTimer(fake)
        refuse_network()
        import tap_cloudwatch_metrics.tap as tap_module  # noqa: PLC0415

        tap_module._wall_clock = lambda: float(workload.now)
        real_make_client = tap_module.make_client
        tap_module.make_client = lambda *a, **k: fake.attach(real_make_client(*a, **k))

        profiler = cProfile.Profile()
        started = time.perf_counter()
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stdout(devnull),
            contextlib.suppress(SystemExit),
        ):
            profiler.enable()
            try:
                tap_module.TapCloudWatchMetrics.cli(args=["--config", str(config_path)])
            finally:
                profiler.disable()
        wall = time.perf_counter() - started

    profiler.dump_stats(output.with_suffix(".prof"))
    pools = "kept (worker threads are not profiled)" if args.keep_threads else "inlined"
    text = io.StringIO()
    text.write(
        f"# cProfile of the tap, workload {workload.name}: {workload.describe()}\n"
        f"# wall {wall:.2f} s under the profiler; fake handler {timer.calls} requests, "
        f"{timer.cpu:.2f} s CPU (unprofiled it is cheaper)\n"
        f"# thread pools: {pools}; tap code: {version}\n"
        f"# GetMetricData {fake.count('GetMetricData')}, ListMetrics {fake.count('ListMetrics')}, "
        f"GetMetricStatistics {fake.count('GetMetricStatistics')}, billed metric-requests "
        f"{fake.billed_metric_requests}\n\n"
    )
    for key in ("cumulative", "tottime"):
        text.write(f"## top {args.top} by {key}\n\n")
        stats = pstats.Stats(profiler, stream=text)
        stats.strip_dirs().sort_stats(key).print_stats(args.top)
    output.write_text(text.getvalue())
    print(text.getvalue())
    print(f"written: {output} and {output.with_suffix('.prof')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
