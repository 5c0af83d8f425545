"""Benchmarks of prefect-venice against the local emulator, each beside a baseline.

Run: `make benchmark` (or `.venv/bin/python benchmarks/run.py [--quick] [--only NAME,...]`;
through make: `make benchmark BENCHMARK_ONLY=batch,real_limits BENCHMARK_QUICK=1`).
Prints one JSON document of medians and the ratios against the baseline measured in
the same run; record results in docs/benchmarks.md. Nothing here is a test: no figure
is asserted.

Benchmarks (names for --only):
  download       a 256 MiB video: streamed client vs `response.content`
  download_disk  a 1 GiB video: the client's save vs `curl` then `sync` (benchmarks/download.py)
  polling        48 jobs, cold then warm: fixed 5 s loop vs estimate vs history schedule
  flow_overhead  one video: the generate_video flow vs the bare client
  batch          100 videos: generate_videos vs a hand-written asyncio + httpx script
  thousand       1,000 videos in one generate_videos run
  real_limits    60 jobs under the real 40/120-per-minute limits, against their bound
  global_limits  120 videos on three "machines" sharing the limits through Prefect's limits
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

# benchmarks/ is this script's folder, so its modules import by their plain names.
import batch
import download
import global_limits
import polling
import single
from common import JSON, write_json

BENCHMARKS = (
    "download",
    "download_disk",
    "polling",
    "flow_overhead",
    "batch",
    "thousand",
    "real_limits",
    "global_limits",
)


def _plan(args: argparse.Namespace) -> dict[str, Callable[[], object]]:
    quick = bool(args.quick)
    guard = args.staging_guard
    runs, mib, repeats = (3, 64, 1) if quick else (5, 256, 3)
    return {
        "download": lambda: single.bench_download(runs, mib),
        "download_disk": lambda: download.bench_download_disk(runs, 256 if quick else 1024),
        "polling": lambda: polling.bench_polling_batch(
            scale=args.polling_scale,
            repeats=args.polling_repeats or repeats,
            names=tuple(args.polling_policies.split(",")),
            budget=not args.polling_no_budget,
            emulator=args.polling_emulator,
        ),
        "flow_overhead": lambda: single.bench_flow_overhead(runs=3 if quick else 7),
        "batch": lambda: batch.bench_batch_vs_script(
            videos=args.batch_videos,
            scale=0.01,
            repeats=args.batch_rounds or (1 if quick else 3),
            staging_guard=guard,
        ),
        "thousand": lambda: batch.bench_thousand(
            videos=200 if quick else 1000,
            scale=args.thousand_scale,
            timeout=args.timeout,
            staging_guard=guard,
        ),
        "real_limits": lambda: batch.bench_real_limits(jobs=60, scale=0.01, staging_guard=guard),
        "global_limits": lambda: global_limits.bench_global_limits(videos=60 if quick else 120),
    }


def _child(kind: str, spec_file: str, out_file: str) -> int:
    """Run one side of a batch benchmark in this fresh process; write its figures to OUT."""
    out = Path(out_file)
    spec: JSON = json.loads(Path(spec_file).read_text())
    try:
        result = batch.CHILDREN[kind](spec, out)
    except BaseException:
        write_json(out, {"error": traceback.format_exc()})
        raise
    write_json(out, result)
    return 0


def main() -> None:
    """Run the chosen benchmarks and print one JSON document."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCHMARK_QUICK", "") not in ("", "0"),
        help="fewer runs, smaller sizes (or BENCHMARK_QUICK=1)",
    )
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCHMARK_ONLY") or ",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (or BENCHMARK_ONLY; "
        "default: all)",
    )
    parser.add_argument("--batch-videos", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument(
        "--batch-rounds",
        type=int,
        default=0,
        help="rounds of the batch benchmark (each runs every side once; default 3, quick 1)",
    )
    parser.add_argument(
        "--polling-policies",
        default="estimate,history",
        help="poll policies beside the 5 s loop (benchmarks/polling.py: estimate, history, "
        "history_2.0s, history_2.2s, history_2.3s, history_fifo)",
    )
    parser.add_argument(
        "--polling-repeats",
        type=int,
        default=0,
        help="seeds of the polling benchmark (each a cold and a warm pass per policy; "
        "default 3, quick 1)",
    )
    parser.add_argument(
        "--polling-scale",
        type=float,
        default=0.1,
        help="the polling benchmark's time scale (default 0.1: a 100 s job takes 10 s; "
        "larger is slower and closer to real time)",
    )
    parser.add_argument(
        "--polling-emulator",
        choices=("process", "thread"),
        default="process",
        help="where the polling benchmark's emulator runs: a process of its own (default, "
        "as Venice is to its clients) or a thread of the benchmark's (figures before 2026-11-26)",
    )
    parser.add_argument(
        "--polling-no-budget",
        action="store_true",
        help="skip the polling benchmark's short-allowance part",
    )
    parser.add_argument("--thousand-scale", type=float, default=0.01, help=argparse.SUPPRESS)
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds before the 1,000-video run is stopped and reported as unfinished",
    )
    parser.add_argument(
        "--staging-guard",
        action="store_true",
        help=(
            "keep a file in each batch's staging folder (the work-around for a race fixed "
            "on 2026-11-26; off by default since, so the flows run as users run them)"
        ),
    )
    parser.add_argument("--no-staging-guard", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-download", nargs=2, metavar=("MODE", "MIB"), help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_download:
        mode, mib = args.one_download
        print(json.dumps(single.download_once(mode, int(mib))))
        return
    if args.child:
        sys.exit(_child(*args.child))
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {BENCHMARKS}")
    # The clients' pacing state and job journal go to a temporary home, never ~/.prefect-venice.
    venice_home = tempfile.mkdtemp(prefix="venice-bench-venice-home-")
    os.environ["PREFECT_VENICE_HOME"] = venice_home
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    report: dict[str, object] = {"python": sys.version.split()[0], "cores": os.cpu_count()}
    plan = _plan(args)
    for name in BENCHMARKS:
        if name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            report[name] = plan[name]()
    shutil.rmtree(venice_home, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
