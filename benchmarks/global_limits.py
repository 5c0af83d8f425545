"""7. Venice's limits across workers: three "machines" share one key through Prefect's limits.

One Prefect server (started here with `prefect server start`, its lease repossessor
every second) serves every side. Each side gets a fresh emulator with the real
per-minute windows (40 queue / 120 retrieve per key, 60 s, opened by the first
request) and short jobs, and three worker processes started at the same instant,
each with its own PREFECT_HOME and PREFECT_VENICE_HOME (so their header pacers share
no file, as on separate machines), each running `generate_videos` over a third of
the videos against the same key:

- `window`: the limits `prefect-venice limits` creates (window limits, the default),
  named in every worker's settings;
- `none`: no global limits, each worker paces only from its own headers (what the
  limits prevent);
- `rate`: the old token buckets (`prefect-venice limits --kind rate`).

Run alone: `.venv/bin/python benchmarks/global_limits.py [--quick] [--sides window,none]`
(or `benchmarks/run.py --only global_limits`). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import JSON, REQUEST, Sampler, cpu_seconds, write_json

from prefect_venice.emulator import Emulator, EmulatorConfig, peak_per_window

THIS_FILE = Path(__file__).resolve()
BIN_DIR = Path(sys.executable).parent
#: The longest job the emulator draws for this request: base 120 s x 1.35 (its spread).
LONGEST_JOB_EMULATED_SECONDS = 120 * 1.35
WINDOW_SECONDS = 60.0
QUEUE_PER_WINDOW = 40
RETRIEVE_PER_WINDOW = 120
WORKERS = 3
SIDES = ("window", "none", "rate")
#: Limit names per side (the rate side's own names, so no lease of the window side counts).
LIMIT_NAMES: dict[str, tuple[str, str] | None] = {
    "window": ("venice-queue", "venice-retrieve"),
    "none": None,
    "rate": ("venice-queue-rate", "venice-retrieve-rate"),
}


# --- the worker (a child process) -----------------------------------------------------------


def child_worker(spec: JSON, out: Path) -> JSON:
    """One "machine": wait for the common start, then run generate_videos over its share."""
    sampler = Sampler().start()
    from prefect_venice.flows import VideoRequest, generate_videos

    home = Path(spec["home"])
    output_dir = home / "videos"
    first, count = int(spec["first"]), int(spec["videos"])
    requests = [
        VideoRequest(
            model=REQUEST.model,
            prompt=f"{REQUEST.prompt}, take {index}",
            duration=REQUEST.duration,
            resolution=REQUEST.resolution,
            aspect_ratio=REQUEST.aspect_ratio,
            max_usd=1.0,
            output_dir=str(output_dir),
        )
        for index in range(first, first + count)
    ]
    Path(spec["ready_file"]).touch()
    go_file = Path(spec["go_file"])
    while not go_file.exists():
        time.sleep(0.01)
    go_at = float(go_file.read_text())
    time.sleep(max(go_at - time.time(), 0.0))
    started_at = time.time()
    started = time.perf_counter()
    error: str | None = None
    try:
        results = generate_videos(
            requests, max_usd=count * 1.0, credentials_block=spec["credentials_block"]
        )
    except Exception as exc:  # a failed video fails the run: report it beside the figures
        results, error = [], f"{type(exc).__name__}: {exc}"[:400]
    wall = time.perf_counter() - started
    sampler.stop()
    return {
        "started_at": started_at,
        "ended_at": time.time(),
        "wall_seconds": round(wall, 3),
        "flow_error": error,
        "results": len(results),
        "saved_files": sum(1 for _ in output_dir.glob("*.mp4")) if output_dir.exists() else 0,
        **sampler.report(),
        **cpu_seconds(),
    }


def _child_main(spec_file: str, out_file: str) -> int:
    out = Path(out_file)
    try:
        result = child_worker(json.loads(Path(spec_file).read_text()), out)
    except BaseException:
        write_json(out, {"error": traceback.format_exc()})
        raise
    write_json(out, result)
    return 0


# --- the Prefect server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as answer:
            return 200 <= int(answer.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _base_env(home: Path) -> dict[str, str]:
    """The caller's environment without any PREFECT_* setting, with a Prefect home of its own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_VENICE_HOME=str(home / "venice"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def _deployments() -> Any:
    """deployments/scale_out.py, the project's scale-out recipe (its PostgreSQL step)."""
    folder = str(THIS_FILE.parent.parent / "deployments")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("scale_out")


def _recipe(root: Path) -> Any:
    """The scale-out recipe's settings (a scale_out.ScaleOutConfig) for a stack under `root`."""
    config = _deployments().ScaleOutConfig(root=root / "stack")
    config.root.mkdir(parents=True, exist_ok=True)
    return config


def _start_postgres(root: Path) -> tuple[Any, str, Path]:
    """A PostgreSQL cluster of its own, as the scale-out recipe starts it (its step 1).

    Returns the process (a supervisor.ManagedProcess), the database URL and its folder.
    """
    process, url, _, folder = _deployments().start_postgres(_recipe(root), _free_port())
    return process, str(url), Path(folder)


def _stop_postgres(process: Any, folder: Path) -> None:
    importlib.import_module("supervisor").stop_process(process)
    shutil.rmtree(folder, ignore_errors=True)


def _start_server(
    root: Path, database_url: str | None, *, verbose: bool = False, timeout: float = 180.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`prefect server start` as the scale-out recipe starts it; wait for /api/health.

    Its environment is the recipe's (`scale_out.server_environment`): the lease
    repossessor every second, leases kept in files, and on `database_url` (PostgreSQL)
    the database pool sized; without one, SQLite in its Prefect home.
    """
    config = _recipe(root)
    home = config.root
    port = _free_port()
    env: dict[str, str] = dict(_deployments().server_environment(config, port, database_url))
    env.update(
        PREFECT_UI_ENABLED="false",
        # INFO (--keep): each request and each pass of the repossessor that frees leases.
        PREFECT_SERVER_LOGGING_LEVEL="INFO" if verbose else "WARNING",
    )
    argv = [str(BIN_DIR / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=home,  # never the repository root: its bare prefect_venice/ shadows the package
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout
    while not _http_ok(f"{api_url}/health"):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_group(process)
            raise RuntimeError(f"the Prefect server did not start; see {home / 'server.log'}")
        time.sleep(0.25)
    return process, api_url


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """End a process's own group (TERM, then KILL)."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_limit(api_url: str, name: str) -> JSON | None:
    """The global concurrency limit as the server has it (limit, decay, active slots)."""
    try:
        with urllib.request.urlopen(
            f"{api_url}/v2/concurrency_limits/{name}", timeout=5.0
        ) as answer:
            data: JSON = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return {
        key: data.get(key) for key in ("limit", "slot_decay_per_second", "active_slots", "active")
    }


# --- one side -------------------------------------------------------------------------------


def _create_limits(side: str, api_url: str, home: Path) -> JSON:
    """Run `prefect-venice limits` (the package's one command) against the server."""
    names = LIMIT_NAMES[side]
    assert names is not None
    argv = [str(BIN_DIR / "prefect-venice"), "limits", "--queue-name", names[0]]
    argv += ["--retrieve-name", names[1]]
    if side == "rate":
        argv += ["--kind", "rate"]
    env = _base_env(home)
    env["PREFECT_API_URL"] = api_url
    done = subprocess.run(
        argv, cwd=home, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    command = "prefect-venice limits" + (" --kind rate" if side == "rate" else "")
    if side == "rate":
        command += f" --queue-name {names[0]} --retrieve-name {names[1]}"
    return {
        "command": command,
        "stdout": done.stdout.splitlines(),
        "stderr": done.stderr.splitlines(),
        "created": {name: _read_limit(api_url, name) for name in names},
    }


def _save_block(api_url: str, name: str, emu: Emulator) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from prefect_venice.blocks import VeniceCredentials

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        VeniceCredentials(api_key=emu.api_key, base_url=emu.base_url).save(name, overwrite=True)


def _run_side(
    side: str, videos: int, scale: float, api_url: str, root: Path, timeout: float
) -> JSON:
    """Three workers at once against a fresh emulator; the emulator's view of what they did."""
    side_dir = root / side
    side_dir.mkdir()
    config = EmulatorConfig(
        time_scale=scale,
        seed=7,
        real_time_limits=True,
        balance_usd=10_000.0,
        video_bytes=4096,
    )
    shares = [videos // WORKERS + (1 if i < videos % WORKERS else 0) for i in range(WORKERS)]
    report: JSON = {"side": side, "videos": videos, "workers": WORKERS, "videos_each": shares}
    with Emulator(config) as emu:
        block = f"bench-global-{side}"
        _save_block(api_url, block, emu)
        limit_env: dict[str, str] = {}
        names = LIMIT_NAMES[side]
        if names is not None:
            report["limits"] = _create_limits(side, api_url, side_dir)
            limit_env = {
                "PREFECT_INTEGRATIONS_VENICE_QUEUE_RATE_LIMIT": names[0],
                "PREFECT_INTEGRATIONS_VENICE_RETRIEVE_RATE_LIMIT": names[1],
            }
        go_file = side_dir / "go"
        processes: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
        first = 0
        for index, share in enumerate(shares):
            home = side_dir / f"worker-{index}"
            home.mkdir()
            env = _base_env(home)
            env.update(PREFECT_API_URL=api_url, **limit_env)
            spec: JSON = {
                "home": str(home),
                "first": first,
                "videos": share,
                "credentials_block": block,
                "ready_file": str(home / "ready"),
                "go_file": str(go_file),
            }
            first += share
            (home / "spec.json").write_text(json.dumps(spec))
            with (home / "worker.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, str(THIS_FILE), "--child", *_files(home)],
                    cwd=home,  # never the repository root (its bare prefect_venice/)
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            processes.append((process, home, home / "out.json"))
        # The common start: once every worker has imported Prefect and built its requests.
        deadline = time.monotonic() + 180.0
        while not all((home / "ready").exists() for _, home, _ in processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _, _ in processes):
                break
            time.sleep(0.05)
        go_at = time.time() + 0.5
        go_file.write_text(repr(go_at))
        load_before = os.getloadavg()
        deadline = time.monotonic() + timeout
        workers: list[JSON] = []
        for process, home, out in processes:
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                _stop_group(process)
                code = None
            worker = _read(out) or {}
            if code != 0:
                worker["exit"] = code
                worker["log_tail"] = (home / "worker.log").read_text(errors="replace")[-1500:]
            workers.append(worker)
        ended_at = max((float(w.get("ended_at", time.time())) for w in workers), default=go_at)
        report["load_average_1min_before_after"] = [
            round(load_before[0], 1),
            round(os.getloadavg()[0], 1),
        ]
        report["wall_seconds"] = round(ended_at - go_at, 3)
        report.update(_figures(emu.ledger(), emu.requests(), videos, go_at))
        if names is not None:
            report["limits_after"] = {name: _read_limit(api_url, name) for name in names}
    report["bound_seconds"] = round(_bound(videos, scale), 2)
    report["ratio_wall_over_bound"] = round(report["wall_seconds"] / report["bound_seconds"], 3)
    report["worker_runs"] = [
        {
            key: worker.get(key)
            for key in (
                "wall_seconds",
                "results",
                "saved_files",
                "flow_error",
                "peak_threads",
                "peak_rss_mib",
                "exit",
                "log_tail",
                "error",
            )
            if worker.get(key) is not None
        }
        for worker in workers
    ]
    report["all_saved"] = (
        all(
            worker.get("results") == worker.get("saved_files") == share
            for worker, share in zip(workers, shares, strict=True)
        )
        and report["jobs_queued_once"] == report["jobs"] == videos
    )
    return report


def _files(home: Path) -> list[str]:
    return [str(home / "spec.json"), str(home / "out.json")]


def _read(path: Path) -> JSON | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- what the emulator saw ------------------------------------------------------------------


def _bound(videos: int, scale: float) -> float:
    """Venice's bound: the first 40 queue calls at once, then 40 per further window."""
    windows_needed = math.ceil(videos / QUEUE_PER_WINDOW)
    return (windows_needed - 1) * WINDOW_SECONDS + LONGEST_JOB_EMULATED_SECONDS * scale


def _venice_windows(times: list[float]) -> list[JSON]:
    """The queue windows as the emulator opens them: the first accepted call after one ends."""
    windows: list[JSON] = []
    start = -math.inf
    for moment in times:
        if moment >= start + WINDOW_SECONDS:
            start = moment
            windows.append({"opened_at_s": moment, "last_call_at_s": moment, "calls": 0})
        windows[-1]["calls"] += 1
        windows[-1]["last_call_at_s"] = moment
    return windows


def _percent_of_allowed(venice: list[JSON], whole_grid_windows: list[int]) -> JSON:
    """The queue calls made against what Venice's allowance admits in the same time.

    `percent_of_allowed_rate`: the calls of every window but the last, as Venice
    opened them, over what 40 per 60 s admits between the first window's opening and
    the last one's: 100% when each window is full and opens the instant the one before
    ends. `percent_of_allowed_rate_grid`: the calls in each whole 60 s window of a grid
    from the first call (all but the last, partial one) over 40 per window.
    """
    out: JSON = {"percent_of_allowed_rate": None, "percent_of_allowed_rate_grid": None}
    if len(venice) >= 2:
        calls = sum(int(window["calls"]) for window in venice[:-1])
        seconds = float(venice[-1]["opened_at_s"]) - float(venice[0]["opened_at_s"])
        admitted = QUEUE_PER_WINDOW * seconds / WINDOW_SECONDS
        out["percent_of_allowed_rate"] = round(100.0 * calls / admitted, 1)
    if whole_grid_windows:
        made = sum(whole_grid_windows)
        out["percent_of_allowed_rate_grid"] = round(
            100.0 * made / (QUEUE_PER_WINDOW * len(whole_grid_windows)), 1
        )
    return out


def _figures(ledger: JSON, requests: list[JSON], videos: int, go_at: float) -> JSON:
    statuses: dict[str, dict[str, int]] = ledger["statuses"]
    answers_429 = {
        endpoint: int(counts.get("429", 0))
        for endpoint, counts in statuses.items()
        if int(counts.get("429", 0))
    }
    jobs: dict[str, Any] = ledger["jobs"]
    queue = [r for r in requests if r["endpoint"] == "queue"]
    accepted = sorted(float(r["time"]) for r in queue if r["status"] == 200)
    figures: JSON = {
        "answers_429": sum(answers_429.values()),
        "answers_429_by_endpoint": answers_429,
        "queue_calls": len(queue),
        "queue_calls_accepted": len(accepted),
        "jobs": len(jobs),
        "jobs_queued_once": sum(1 for job in jobs.values() if job["queue_calls"] == 1),
        "calls": ledger["calls"],
        "peak_queue_calls_per_60s": peak_per_window(
            [r for r in requests if r["status"] == 200], "queue", WINDOW_SECONDS
        ),
        "peak_retrieve_calls_per_60s": peak_per_window(
            [r for r in requests if r["status"] == 200], "retrieve", WINDOW_SECONDS
        ),
    }
    if not accepted:
        return figures
    first, last = accepted[0], accepted[-1]
    span = last - first
    # Accepted queue calls in each 60 s window of a grid that starts at the first call.
    grid = [0] * (int(span // WINDOW_SECONDS) + 1)
    for moment in accepted:
        grid[int((moment - first) // WINDOW_SECONDS)] += 1
    venice = _venice_windows(accepted)
    for window in venice:
        for key in ("opened_at_s", "last_call_at_s"):
            window[key] = round(float(window[key]) - first, 2)
    whole = grid[:-1]
    figures.update(
        {
            "first_queue_call_after_start_s": round(first - go_at, 2),
            "last_queue_call_after_start_s": round(last - go_at, 2),
            "queue_span_s": round(span, 2),
            "queue_calls_per_60s_from_first": grid,
            "queue_windows_as_venice_opens_them": venice,
            "windows_used": len(venice),
            "windows_needed": math.ceil(videos / QUEUE_PER_WINDOW),
            # (calls - 1) over the span: a burst at the start of each window makes this
            # exceed 40/min, since the span ends at the last window's first instant.
            "achieved_queue_rate_per_min": (
                round((len(accepted) - 1) / span * 60.0, 1) if span > 0 else None
            ),
            **_percent_of_allowed(venice, whole),
        }
    )
    return figures


# --- the benchmark --------------------------------------------------------------------------


def bench_global_limits(
    videos: int = 120,
    scale: float = 0.01,
    sides: tuple[str, ...] = SIDES,
    timeout: float = 600.0,
    keep: bool = False,
    database: str = "postgres",
) -> JSON:
    """Every side against one Prefect server; each side's figures and the bound.

    `database="postgres"` runs the server on PostgreSQL, as the scale-out recipe does
    (docs/deployments.md); "sqlite" on the server's default SQLite database.
    """
    root = Path(tempfile.mkdtemp(prefix="venice-bench-global-limits-"))
    postgres: tuple[Any, str, Path] | None = None
    if database == "postgres":
        postgres = _start_postgres(root)
    try:
        server, api_url = _start_server(root, postgres[1] if postgres else None, verbose=keep)
    except BaseException:
        if postgres is not None:
            _stop_postgres(postgres[0], postgres[2])
        raise
    summary: JSON = {
        "videos": videos,
        "workers": WORKERS,
        "time_scale": scale,
        "bound_seconds": round(_bound(videos, scale), 2),
        "allowance": f"{QUEUE_PER_WINDOW} queue / {RETRIEVE_PER_WINDOW} retrieve per 60 s",
        "server": (
            "prefect server start with the scale-out recipe's settings "
            "(repossessor loop 1 s, leases in files)"
        ),
        "database": database,
    }
    failed = False
    try:
        for side in sides:
            print(f"  global_limits: side {side} ...", file=sys.stderr, flush=True)
            try:
                summary[side] = _run_side(side, videos, scale, api_url, root, timeout)
            except Exception as exc:
                failed = True
                summary[side] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    finally:
        _stop_group(server)
        if postgres is not None:
            _stop_postgres(postgres[0], postgres[2])
    if (
        keep
        or failed
        or any(
            "exit" in worker or "flow_error" in worker
            for side in sides
            for worker in summary[side].get("worker_runs", [])
        )
    ):
        summary["logs_kept_in"] = str(root)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return summary


def main() -> None:
    """Run this benchmark alone, or (`--child`) one worker of it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="60 videos instead of 120")
    parser.add_argument("--videos", type=int, help="videos over the three workers")
    parser.add_argument(
        "--sides", default=",".join(SIDES), help="comma-separated: " + ",".join(SIDES)
    )
    parser.add_argument(
        "--database", choices=("postgres", "sqlite"), default="postgres", help="the server's"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs (server, workers)")
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.exit(_child_main(*args.child))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    videos = args.videos or (60 if args.quick else 120)
    sides = tuple(side.strip() for side in args.sides.split(",") if side.strip())
    unknown = set(sides) - set(SIDES)
    if unknown:
        parser.error(f"unknown side(s): {sorted(unknown)}")
    print(
        json.dumps(
            bench_global_limits(videos=videos, sides=sides, keep=args.keep, database=args.database),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
