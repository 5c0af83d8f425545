"""Batch benchmarks: generate_videos against a hand-written script, at scale, at real limits.

The emulator always runs in this (the parent) process; each side runs in a fresh
subprocess of its own (`run.py --child ...`), so its wall time, peak RSS and thread
count are its own, not the emulator's. Every subprocess gets a temporary PREFECT_HOME
and PREFECT_VENICE_HOME (journal, pacing state) and, for flows, an in-process Prefect
test server (started before the clock starts, never timed).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    JSON,
    REQUEST,
    ChildFailed,
    Sampler,
    cpu_seconds,
    fresh_environment,
    median,
    prefect_server,
    run_child,
    write_json,
)

from prefect_venice.emulator import Emulator, EmulatorConfig, peak_per_window

#: The default PollPolicy bounds (real seconds), multiplied by the time scale for flows.
POLL_MIN, POLL_FIRST, POLL_MAX, POLL_LAG = 3.0, 5.0, 30.0, 2.5
#: The script's fixed poll interval, in emulated seconds (multiplied by the time scale).
SCRIPT_POLL_EMULATED_SECONDS = 10.0
#: The longest job the emulator draws for this request: base 120 s x 1.35 (its spread).
LONGEST_JOB_EMULATED_SECONDS = 120 * 1.35


def _request_fields(index: int) -> dict[str, Any]:
    return {
        "model": REQUEST.model,
        "prompt": f"{REQUEST.prompt}, take {index}",
        "duration": REQUEST.duration,
        "resolution": REQUEST.resolution,
        "aspect_ratio": REQUEST.aspect_ratio,
    }


# --- the children ---------------------------------------------------------------------------


def child_flow(spec: JSON, out: Path) -> JSON:
    """Run generate_videos over `spec["videos"]` requests against the emulator at `base_url`."""
    sampler = Sampler(stacks=bool(spec.get("profile"))).start()
    progress_stop = threading.Event()
    home = Path(spec["home"])
    output_dir = home / "videos"

    def report_progress() -> None:
        # Partial figures, in case the parent has to stop this run.
        while not progress_stop.wait(10.0):
            saved = sum(1 for _ in output_dir.glob("*.mp4")) if output_dir.exists() else 0
            write_json(
                out,
                {
                    "progress": {
                        "seconds": round(time.time() - started_at, 1),
                        "saved_files": saved,
                        **sampler.report(),
                        **cpu_seconds(),
                    }
                },
            )

    from prefect_venice.blocks import VeniceCredentials
    from prefect_venice.flows import VideoRequest, generate_videos
    from prefect_venice.tasks.video import STAGING_DIR_NAME

    videos = int(spec["videos"])
    guard = bool(spec.get("staging_guard", False))
    if guard:
        # The work-around for a race fixed on 2026-11-26 (see docs/benchmarks.md): a task
        # that found the shared staging folder empty removed it while another task was
        # creating it. A fresh file kept the folder from ever being empty. Off by default.
        staging = output_dir / STAGING_DIR_NAME
        staging.mkdir(parents=True, exist_ok=True)
        (staging / "benchmark-keep").touch()
    requests = [
        VideoRequest(**_request_fields(i), max_usd=1.0, output_dir=str(output_dir))
        for i in range(videos)
    ]
    started_at = time.time()
    with prefect_server(home):
        VeniceCredentials(api_key=spec["api_key"], base_url=spec["base_url"]).save("bench")
        reporter = threading.Thread(target=report_progress, daemon=True)
        started_at = time.time()
        reporter.start()
        started = time.perf_counter()
        error: str | None = None
        try:
            results = generate_videos(
                requests,
                max_usd=videos * 1.0,
                credentials_block="bench",
                **({"max_in_flight": spec["max_in_flight"]} if "max_in_flight" in spec else {}),
            )
        except Exception as exc:  # a failed video fails the run: report it beside the figures
            results, error = [], f"{type(exc).__name__}: {exc}"[:300]
        wall = time.perf_counter() - started
        progress_stop.set()
        reporter.join()
    sampler.stop()
    return {
        "wall_seconds": round(wall, 3),
        "started_at": started_at,
        "flow_error": error,
        "staging_guard": guard,
        "results": len(results),
        "saved_files": sum(1 for _ in output_dir.glob("*.mp4")),
        **sampler.report(),
        **cpu_seconds(),
    }


def child_script(spec: JSON, out: Path) -> JSON:
    """Run the hand-written asyncio + httpx script over the same requests."""
    from script_baseline import make_videos

    sampler = Sampler().start()
    home = Path(spec["home"])
    videos = int(spec["videos"])
    (home / "videos").mkdir(parents=True, exist_ok=True)
    started_at = time.time()
    started = time.perf_counter()
    paths = asyncio.run(
        make_videos(
            spec["base_url"],
            spec["api_key"],
            [_request_fields(i) for i in range(videos)],
            home / "videos",
            max_usd=videos * 1.0,
            poll_interval=float(spec["poll_interval"]),
            limit_window=float(spec["limit_window"]),
        )
    )
    wall = time.perf_counter() - started
    sampler.stop()
    return {
        "wall_seconds": round(wall, 3),
        "started_at": started_at,
        "results": len(paths),
        "saved_files": sum(1 for p in paths if p.exists()),
        **sampler.report(),
        **cpu_seconds(),
    }


CHILDREN = {"flow": child_flow, "script": child_script}


# --- running a child beside an emulator -----------------------------------------------------


def _run_side(
    kind: str,
    config: EmulatorConfig,
    spec: JSON,
    *,
    timeout: float,
    extra_env: dict[str, str] | None = None,
) -> tuple[JSON, JSON, list[JSON]]:
    """Start an emulator here, run one child against it; return (child, ledger, requests)."""
    home, env = fresh_environment(f"venice-bench-{kind}-")
    env.update(extra_env or {})
    with Emulator(config) as emu:
        full = {**spec, "home": str(home), "base_url": emu.base_url, "api_key": emu.api_key}
        try:
            result = run_child(kind, full, home=home, env=env, timeout=timeout)
        except ChildFailed as failed:
            failed.partial = {
                **(failed.partial or {}),
                "ledger_calls": emu.ledger()["calls"],
                "ledger_statuses": emu.ledger()["statuses"],
            }
            raise  # the folder stays, with the child's log
        ledger, requests = emu.ledger(), emu.requests()
    shutil.rmtree(home, ignore_errors=True)
    return result, ledger, requests


def _poll_env(scale: float) -> dict[str, str]:
    """The default poll policy's bounds scaled like the jobs (3/5/30 s x scale)."""
    return {
        "PREFECT_INTEGRATIONS_VENICE_POLL_MIN_INTERVAL_SECONDS": f"{POLL_MIN * scale:g}",
        "PREFECT_INTEGRATIONS_VENICE_POLL_FIRST_INTERVAL_SECONDS": f"{POLL_FIRST * scale:g}",
        "PREFECT_INTEGRATIONS_VENICE_POLL_MAX_INTERVAL_SECONDS": f"{POLL_MAX * scale:g}",
        "PREFECT_INTEGRATIONS_VENICE_POLL_TARGET_LAG_SECONDS": f"{POLL_LAG * scale:g}",
    }


def _calls(ledger: JSON, requests: list[JSON], started_at: float) -> JSON:
    """What the emulator saw: calls per endpoint, 429s, paid calls, time to the first one."""
    statuses = ledger["statuses"]
    too_many = sum(int(counts.get("429", 0)) for counts in statuses.values())
    queue_times = [r["time"] for r in requests if r["endpoint"] == "queue"]
    queued_at = {r["queue_id"]: r["time"] for r in requests if r["endpoint"] == "queue"}
    completed_at = {r["queue_id"]: r["time"] for r in requests if r["endpoint"] == "complete"}
    job_seconds = [completed_at[q] - queued_at[q] for q in completed_at if q in queued_at]
    jobs = ledger["jobs"]
    return {
        "calls": ledger["calls"],
        "answers_429": too_many,
        "answers_429_by_endpoint": {
            endpoint: int(counts["429"])
            for endpoint, counts in statuses.items()
            if counts.get("429")
        },
        "jobs": len(jobs),
        "jobs_queued_once": sum(1 for job in jobs.values() if job["queue_calls"] == 1),
        "charged_usd": ledger["charged_usd_total"],
        "seconds_to_first_paid_call": (
            round(min(queue_times) - started_at, 3) if queue_times else None
        ),
        "seconds_to_last_paid_call": (
            round(max(queue_times) - started_at, 3) if queue_times else None
        ),
        # The last video's /video/complete: what follows it is the flow's (or script's) end.
        "seconds_to_last_complete_call": (
            round(max(completed_at.values()) - started_at, 3) if completed_at else None
        ),
        # Per video, from its paid call to its /video/complete (the job runs ~0.9-1.6 s
        # at time scale 0.01): how long a saved video waits on the client.
        "median_seconds_queue_to_complete": (
            round(median(job_seconds), 3) if job_seconds else None
        ),
        "retrieve_calls_per_job": round(ledger["calls"].get("retrieve", 0) / max(len(jobs), 1), 2),
    }


# --- 4. generate_videos vs the hand-written script ------------------------------------------


def bench_batch_vs_script(
    videos: int, scale: float, repeats: int, *, staging_guard: bool = False, seed: int = 4
) -> JSON:
    """The same batch, same emulator settings and seed, by the flow and by the script.

    Rate limits on, scaled with the jobs (40 queue / 120 retrieve per 60 s x scale).
    The flow uses the default poll policy with its bounds scaled by the time scale;
    the script polls every SCRIPT_POLL_EMULATED_SECONDS x scale.
    """
    config = EmulatorConfig(time_scale=scale, seed=seed, balance_usd=10_000.0, video_bytes=4096)
    # Side name -> (child, its extra settings). The flow runs with its default window
    # (100 videos in flight: the whole batch, like the script), and with the earlier
    # default of 50, which makes a 100-video batch wait for its first half.
    variants: dict[str, tuple[str, JSON]] = {
        "flow": ("flow", {}),
        "flow_max_in_flight_50": ("flow", {"max_in_flight": 50}),
        "script": ("script", {}),
    }
    sides: dict[str, list[JSON]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, (kind, extra) in variants.items():
            spec: JSON = {
                "videos": videos,
                "staging_guard": staging_guard,
                "poll_interval": SCRIPT_POLL_EMULATED_SECONDS * scale,
                "limit_window": config.rate_limit_window_seconds * scale,
                **extra,
            }
            result, ledger, requests = _run_side(
                kind, config, spec, timeout=900, extra_env=_poll_env(scale)
            )
            sides[name].append({**result, **_calls(ledger, requests, result["started_at"])})
    summary: JSON = {
        "videos": videos,
        "time_scale": scale,
        "repeats": repeats,
        "script_poll_interval_seconds": SCRIPT_POLL_EMULATED_SECONDS * scale,
    }
    for name, runs in sides.items():
        summary[name] = _medians(runs)
    script = summary["script"]
    for name in ("flow", "flow_max_in_flight_50"):
        flow = summary[name]
        summary[f"ratios_{name}_over_script"] = {
            "wall": round(flow["wall_seconds"] / script["wall_seconds"], 2),
            "peak_rss": round(flow["peak_rss_mib"] / script["peak_rss_mib"], 2),
            "peak_threads": round(flow["peak_threads"] / max(script["peak_threads"], 1), 1),
        }
    return summary


def _medians(runs: list[JSON]) -> JSON:
    keys = (
        "wall_seconds",
        "peak_rss_mib",
        "peak_threads",
        "cpu_seconds_self",
        "cpu_seconds_children",
        "seconds_to_first_paid_call",
        "seconds_to_last_paid_call",
        "seconds_to_last_complete_call",
        "median_seconds_queue_to_complete",
        "retrieve_calls_per_job",
        "answers_429",
    )
    out: JSON = {
        key: round(median([float(run[key]) for run in runs]), 3)
        for key in keys
        if all(run.get(key) is not None for run in runs)
    }
    out["all_saved"] = all(
        run["saved_files"] == run["results"] == run["jobs"] == run["jobs_queued_once"]
        for run in runs
    )
    out["wall_seconds_each"] = [run["wall_seconds"] for run in runs]
    out["answers_429_by_endpoint_each"] = [run.get("answers_429_by_endpoint", {}) for run in runs]
    errors = [run["flow_error"] for run in runs if run.get("flow_error")]
    if errors:
        out["failed_runs"] = len(errors)
        out["first_error"] = errors[0]
    return out


# --- 5. 1,000 videos in one generate_videos run ---------------------------------------------


def bench_thousand(
    videos: int, scale: float, timeout: float, *, staging_guard: bool = False
) -> JSON:
    """One generate_videos run of `videos` videos: all saved, memory, threads, time."""
    config = EmulatorConfig(time_scale=scale, seed=5, balance_usd=100_000.0, video_bytes=4096)
    spec: JSON = {"videos": videos, "profile": True, "staging_guard": staging_guard}
    try:
        result, ledger, requests = _run_side(
            "flow", config, spec, timeout=timeout, extra_env=_poll_env(scale)
        )
    except ChildFailed as failed:
        return {
            "videos": videos,
            "time_scale": scale,
            "finished": False,
            "error": str(failed).splitlines()[0],
            "partial": failed.partial,
        }
    calls = _calls(ledger, requests, result["started_at"])
    # For reference only (no target): the hand-written script on the same batch.
    script_spec: JSON = {
        "videos": videos,
        "poll_interval": SCRIPT_POLL_EMULATED_SECONDS * scale,
        "limit_window": config.rate_limit_window_seconds * scale,
    }
    script, script_ledger, script_requests = _run_side("script", config, script_spec, timeout=900)
    script_calls = _calls(script_ledger, script_requests, script["started_at"])
    return {
        "videos": videos,
        "time_scale": scale,
        "finished": True,
        "all_saved": (
            result["saved_files"]
            == result["results"]
            == calls["jobs"]
            == calls["jobs_queued_once"]
            == ledger["calls"].get("queue")
            == videos
        ),
        "queue_calls": ledger["calls"].get("queue", 0),
        **{key: value for key, value in result.items() if key != "started_at"},
        **calls,
        "videos_per_second": round(videos / result["wall_seconds"], 2),
        "script_reference": {
            key: script_calls[key] if key in script_calls else script[key]
            for key in (
                "wall_seconds",
                "peak_rss_mib",
                "peak_threads",
                "cpu_seconds_self",
                "seconds_to_first_paid_call",
                "answers_429",
                "jobs_queued_once",
            )
        },
        "ratio_wall_flow_over_script": round(result["wall_seconds"] / script["wall_seconds"], 2),
    }


# --- 6. 60 jobs at the real limits ----------------------------------------------------------


def bench_real_limits(jobs: int, scale: float, *, staging_guard: bool = False) -> JSON:
    """generate_videos under the real per-minute limits, default settings; against the bound.

    The rate-limit windows are real (60 s, 40 queue / 120 retrieve); jobs are short
    (time scale). The bound: the first 40 queue calls fit window one, the rest wait
    for window two, so no client can finish before one window plus the last job.
    Poll settings are the defaults (3 s minimum, unscaled): no configuration at all.
    """
    config = EmulatorConfig(
        time_scale=scale, seed=6, real_time_limits=True, balance_usd=10_000.0, video_bytes=4096
    )
    spec: JSON = {"videos": jobs, "staging_guard": staging_guard}
    result, ledger, requests = _run_side("flow", config, spec, timeout=900)
    calls = _calls(ledger, requests, result["started_at"])
    window = config.rate_limit_window_seconds
    windows_needed = -(-jobs // config.queue_requests_per_window)  # ceil
    longest_job = LONGEST_JOB_EMULATED_SECONDS * scale
    bound = (windows_needed - 1) * window + longest_job
    return {
        "jobs": jobs,
        "time_scale": scale,
        "all_saved": (
            result["saved_files"] == result["results"] == calls["jobs_queued_once"] == jobs
        ),
        "wall_seconds": result["wall_seconds"],
        "bound_seconds": round(bound, 2),
        "ratio_wall_over_bound": round(result["wall_seconds"] / bound, 3),
        "answers_429": calls["answers_429"],
        "peak_queue_calls_per_60s": peak_per_window(requests, "queue", window),
        "peak_retrieve_calls_per_60s": peak_per_window(requests, "retrieve", window),
        "seconds_to_first_paid_call": calls["seconds_to_first_paid_call"],
        "calls": calls["calls"],
        "peak_threads": result["peak_threads"],
        "peak_rss_mib": result["peak_rss_mib"],
    }
