"""2. Polling a batch: the fixed 5 s loop, the estimate schedule and the history schedule.

Every policy waits on the same jobs: each run starts a fresh emulator with the same
seed and queues the same requests in the same order, so job durations are identical
across policies. A run is two passes over a batch of four shapes (1-5 emulated
minutes each): the first with no history (cold), the second with the history the
first left (warm). Figures come from the emulator, not the client: retrieve calls per
job from its ledger, and detection lag (from a job's true end, its queue time in the
request log plus its run time in the ledger, to the first retrieve after that end)
from its request log. Times are emulated seconds.

The budget part runs the warm history schedule under a short retrieve allowance
(the emulator's per-key limit lowered), with the frontier that ranks waiting polls
by their job's chance of being done, and without it (first come, first served).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import JSON, EmulatorProcess

from prefect_venice import AsyncVeniceClient, PollPolicy, Processing, QueuedJob, QueueRequest
from prefect_venice.emulator import Emulator, EmulatorConfig

PROMPT = "A gondola gliding through Venice canals at sunset"
#: Four shapes of 1-5 emulated minutes (the emulator's draws are its own business).
SHAPES = (
    QueueRequest(
        model="veo3-fast-text-to-video",
        prompt=PROMPT,
        duration="4s",
        resolution="720p",
        aspect_ratio="16:9",
    ),
    QueueRequest(
        model="wan-2.5-preview-text-to-video",
        prompt=PROMPT,
        duration="5s",
        resolution="720p",
        aspect_ratio="16:9",
    ),
    QueueRequest(
        model="kling-2.5-turbo-pro-text-to-video",
        prompt=PROMPT,
        duration="10s",
        resolution="1080p",
        aspect_ratio="16:9",
    ),
    QueueRequest(
        model="wan-2.5-preview-text-to-video",
        prompt=PROMPT,
        duration="10s",
        resolution="1080p",
        aspect_ratio="16:9",
    ),
)


def policies(scale: float) -> dict[str, Callable[[], PollPolicy]]:
    """The schedules compared, their real-time settings shrunk by the time scale."""
    return {
        # The guide's loop: a retrieve every 5 s whatever the answer says (the benchmark
        # runs it on exact times instead, see _loop; this is the same as a policy).
        "loop_5s": lambda: PollPolicy(
            min_interval=5 * scale,
            max_interval=5 * scale,
            first_interval=5 * scale,
            jitter=0.0,
            use_history=False,
        ),
        # The earlier PollPolicy: half the remaining estimate, 3-30 s, back-off.
        "estimate": lambda: PollPolicy(
            min_interval=3 * scale,
            max_interval=30 * scale,
            first_interval=5 * scale,
            use_history=False,
        ),
        # The default PollPolicy now: per-shape history, its default median lag target.
        "history": lambda: PollPolicy(
            min_interval=3 * scale,
            max_interval=30 * scale,
            first_interval=5 * scale,
            target_lag=PollPolicy().target_lag * scale,
        ),
        # The same with tighter median lag targets (PREFECT_INTEGRATIONS_VENICE_POLL_
        # TARGET_LAG_SECONDS): 2.0, 2.2, 2.3 and 2.4 s.
        **{
            f"history_{lag}s": functools.partial(
                PollPolicy,
                min_interval=3 * scale,
                max_interval=30 * scale,
                first_interval=5 * scale,
                target_lag=lag * scale,
            )
            for lag in (2.0, 2.2, 2.3, 2.4)
        },
        # The same without the frontier (only differs under a short allowance).
        "history_fifo": lambda: PollPolicy(
            min_interval=3 * scale,
            max_interval=30 * scale,
            first_interval=5 * scale,
            target_lag=PollPolicy().target_lag * scale,
            prioritize=False,
        ),
    }


def _batch(jobs: int) -> list[QueueRequest]:
    return [SHAPES[i % len(SHAPES)] for i in range(jobs)]


def _figures(
    emu: Emulator | EmulatorProcess, queue_ids: list[str], scale: float, shapes: list[QueueRequest]
) -> JSON:
    """Calls and lags of these jobs, from the emulator's ledger and request log."""
    ledger = emu.ledger()
    requests = emu.requests()
    queued_at = {r["queue_id"]: r["time"] for r in requests if r["endpoint"] == "queue"}
    retrieves: dict[str, list[float]] = {}
    for record in requests:
        if record["endpoint"] == "retrieve" and record["status"] == 200:
            retrieves.setdefault(record["queue_id"], []).append(record["time"])
    calls, lags = [], []
    per_shape: dict[str, list[float]] = {}
    for queue_id, request in zip(queue_ids, shapes, strict=True):
        job = ledger["jobs"][queue_id]
        calls.append(job["retrieve_calls"])
        end = queued_at[queue_id] + job["run_seconds"]
        seen = min(t for t in retrieves[queue_id] if t >= end - 0.0005)
        lag = max(0.0, seen - end) / scale
        lags.append(lag)
        per_shape.setdefault(f"{request.model} {request.duration} {request.resolution}", []).append(
            job["run_seconds"] / scale
        )
    lags.sort()
    return {
        "retrieves_per_job": statistics.mean(calls),
        "median_lag_s": statistics.median(lags),
        "p90_lag_s": lags[min(len(lags) - 1, int(0.9 * len(lags)))],
        "mean_lag_s": statistics.mean(lags),
        "job_seconds": {k: [round(min(v)), round(max(v))] for k, v in per_shape.items()},
    }


async def _loop(client: AsyncVeniceClient, job: QueuedJob, path: Path, every: float) -> None:
    """The guide's loop, ideal: a retrieve at queue time + 0, every, 2 every, ... (no drift).

    Sleeping `every` after each answer would drift later on a busy machine, and make
    fewer calls than the loop does; this baseline keeps its own schedule exactly.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in itertools.count():
        await asyncio.sleep(max(0.0, start + k * every - loop.time()))
        if not isinstance(await client.retrieve(job, path), Processing):
            return


async def _pass(
    client: AsyncVeniceClient,
    emu: Emulator | EmulatorProcess,
    batch: list[QueueRequest],
    poll: PollPolicy | float,
    tmp: Path,
) -> list[str]:
    """Queue the batch, then wait on every job at once: by a policy, or the loop's period."""
    jobs = [await client.queue(request, validate=False) for request in batch]

    async def one(index: int) -> None:
        path = tmp / f"{jobs[index].queue_id}.mp4"
        if isinstance(poll, float):
            await _loop(client, jobs[index], path, poll)
        else:
            await client.wait_for_video(jobs[index], path, poll=poll)

    await asyncio.gather(*(one(i) for i in range(len(jobs))))
    return [job.queue_id for job in jobs]


async def _run(
    policy: str,
    jobs: int,
    scale: float,
    seed: int,
    retrieve_limit: int | None,
    emulator: str = "process",
) -> JSON:
    """Two passes (cold, warm) of one policy on a fresh emulator and a fresh history.

    `emulator="process"` runs the emulator in a process of its own (the default, as
    Venice is to its clients); "thread" in a thread of this one (earlier figures).
    """
    config: dict[str, Any] = {
        "time_scale": scale,
        "seed": seed,
        "rate_limits_enabled": retrieve_limit is not None,
        "retrieve_requests_per_window": retrieve_limit or 120,
        # Queueing is not what is measured: let the batch in at once.
        "queue_requests_per_window": 10_000,
        "video_bytes": 4096,
    }
    batch = _batch(jobs)
    home = tempfile.mkdtemp(prefix="venice-bench-polling-")
    previous = os.environ.get("PREFECT_VENICE_HOME")
    os.environ["PREFECT_VENICE_HOME"] = home  # a fresh history for each run
    try:
        emu_context = (
            EmulatorProcess(**config)
            if emulator == "process"
            else Emulator(EmulatorConfig(**config))
        )
        with emu_context as emu, tempfile.TemporaryDirectory() as tmp:
            async with AsyncVeniceClient(emu.api_key, base_url=emu.base_url) as client:
                poll: PollPolicy | float = (
                    5.0 * scale if policy == "loop_5s" else policies(scale)[policy]()
                )
                cold = await _pass(client, emu, batch, poll, Path(tmp))
                warm = await _pass(client, emu, batch, poll, Path(tmp))
            result = {
                "cold": _figures(emu, cold, scale, batch),
                "warm": _figures(emu, warm, scale, batch),
            }
            if retrieve_limit is not None:
                result["http_429"] = emu.ledger()["statuses"].get("retrieve", {}).get("429", 0)
            return result
    finally:
        if previous is None:
            os.environ.pop("PREFECT_VENICE_HOME", None)
        else:
            os.environ["PREFECT_VENICE_HOME"] = previous


def _median_of(runs: list[JSON], part: str) -> JSON:
    keys = ("retrieves_per_job", "median_lag_s", "p90_lag_s", "mean_lag_s")
    return {key: round(statistics.median(r[part][key] for r in runs), 2) for key in keys}


def bench_polling_batch(
    jobs: int = 48,
    scale: float = 0.1,
    repeats: int = 3,
    budget_jobs: int = 48,
    budget_limit: int = 60,
    names: tuple[str, ...] = ("loop_5s", "estimate", "history"),
    budget: bool = True,
    emulator: str = "process",
) -> dict[str, Any]:
    """Same seeds for every policy; medians over repeats; ratios against the 5 s loop.

    `names` picks the policies (see `policies`; the loop always runs, for the ratios);
    `budget=False` skips the short-allowance part; `emulator` is "process" (the
    emulator in a process of its own) or "thread" (in this one, as before).
    """
    summary: dict[str, Any] = {
        "jobs": jobs,
        "shapes": [f"{s.model} {s.duration} {s.resolution}" for s in SHAPES],
        "time_scale": scale,
        "repeats": repeats,
        "emulator": emulator,
    }
    runs: dict[str, list[JSON]] = {name: [] for name in dict.fromkeys(("loop_5s", *names))}
    for seed in range(repeats):
        for name, rows in runs.items():
            rows.append(asyncio.run(_run(name, jobs, scale, seed, None, emulator)))
    summary["job_seconds_seed0"] = runs["loop_5s"][0]["warm"]["job_seconds"]
    for part in ("warm", "cold"):
        table = {name: _median_of(rows, part) for name, rows in runs.items()}
        loop = table["loop_5s"]["retrieves_per_job"]
        for row in table.values():
            row["retrieves_vs_loop"] = round(row["retrieves_per_job"] / loop, 2)
        summary[part] = table
    if not budget:
        return summary
    short: dict[str, list[JSON]] = {name: [] for name in ("history", "history_fifo")}
    for seed in range(repeats):
        for name, rows in short.items():
            rows.append(asyncio.run(_run(name, budget_jobs, scale, seed, budget_limit, emulator)))
    summary["short_budget"] = {
        "jobs": budget_jobs,
        "retrieve_limit_per_minute": budget_limit,
        **{
            name: {
                **_median_of(rows, "warm"),
                "http_429": statistics.median(r["http_429"] for r in rows),
            }
            for name, rows in short.items()
        },
    }
    return summary
