"""Two of the first three benchmarks: one large download and Prefect's cost per video.

The second, polling a batch, is in benchmarks/polling.py.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import MIB, REQUEST, RUN_PY, max_rss_mib

from prefect_venice import PollPolicy, VeniceClient
from prefect_venice.emulator import Emulator, EmulatorConfig

# --- 1. Saving a large video: streamed client vs `response.content` ------------------------


def download_once(mode: str, video_mib: int) -> dict[str, float]:
    """One download in this (fresh) process; returns seconds and peak RSS growth in MiB."""
    config = EmulatorConfig(time_scale=0.001, seed=1, video_bytes=video_mib * MIB)
    with (
        Emulator(config) as emu,
        tempfile.TemporaryDirectory() as tmp,
        VeniceClient(emu.api_key, base_url=emu.base_url) as client,
    ):
        job = client.queue(REQUEST)
        time.sleep(0.5)  # the job is long finished at this time scale
        baseline = max_rss_mib()
        started = time.perf_counter()
        if mode == "client":
            saved = client.retrieve(job, Path(tmp) / "out.mp4")
            assert saved.kind == "saved", saved
        else:
            # What the guide's example and several public SDKs do.
            response = httpx.post(
                f"{emu.base_url}/video/retrieve",
                headers={"Authorization": f"Bearer {emu.api_key}"},
                json={"model": job.model, "queue_id": job.queue_id},
                timeout=120,
            )
            (Path(tmp) / "out.mp4").write_bytes(response.content)
        seconds = time.perf_counter() - started
        peak = max_rss_mib()
    return {"seconds": seconds, "rss_growth_mib": max(0.0, peak - baseline)}


def bench_download(runs: int, video_mib: int) -> dict[str, object]:
    """Alternate client and naive downloads, each in a fresh subprocess (clean peak RSS)."""
    results: dict[str, list[dict[str, float]]] = {"client": [], "naive": []}
    for _ in range(runs):
        for mode in ("client", "naive"):
            out = subprocess.run(
                [sys.executable, str(RUN_PY), "--one-download", mode, str(video_mib)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    summary: dict[str, object] = {"video_mib": video_mib, "runs": runs}
    for mode, rows in results.items():
        seconds = statistics.median(r["seconds"] for r in rows)
        summary[mode] = {
            "median_seconds": round(seconds, 3),
            "median_mib_per_s": round(video_mib / seconds, 1),
            "median_rss_growth_mib": round(statistics.median(r["rss_growth_mib"] for r in rows), 1),
        }
    client, naive = summary["client"], summary["naive"]
    assert isinstance(client, dict) and isinstance(naive, dict)
    summary["time_ratio_client_over_naive"] = round(
        client["median_seconds"] / naive["median_seconds"], 2
    )
    summary["memory_ratio_naive_over_client"] = round(
        naive["median_rss_growth_mib"] / max(client["median_rss_growth_mib"], 1.0), 1
    )
    return summary


# --- 2. Polling a batch: in benchmarks/polling.py (loop vs estimate vs history, cold and warm) --


# --- 3. One video through the generate_video flow vs the bare client -----------------------


def bench_flow_overhead(runs: int) -> dict[str, object]:
    """What Prefect orchestration adds per video: the flow vs the client's own calls.

    Runs in a temporary Prefect home and test server (started once, not timed).
    Jobs finish within milliseconds at this time scale, so the difference is the
    orchestration: task runs, result persistence, artifacts, events, logs.
    """
    home = Path(tempfile.mkdtemp(prefix="venice-bench-home-"))
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_VENICE_HOME=str(home / "venice"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_INTEGRATIONS_VENICE_POLL_MIN_INTERVAL_SECONDS="0.01",
        PREFECT_INTEGRATIONS_VENICE_POLL_FIRST_INTERVAL_SECONDS="0.02",
        PREFECT_INTEGRATIONS_VENICE_POLL_MAX_INTERVAL_SECONDS="0.1",
    )
    from prefect.testing.utilities import prefect_test_harness

    from prefect_venice.blocks import VeniceCredentials
    from prefect_venice.flows import VideoRequest, generate_video

    poll = PollPolicy(min_interval=0.01, first_interval=0.02, max_interval=0.1)
    config = EmulatorConfig(time_scale=0.0005, seed=3, rate_limits_enabled=False)
    previous = os.getcwd()
    os.chdir(home)  # the test server must not see the repository's bare prefect_venice/
    try:
        with prefect_test_harness(server_startup_timeout=60), Emulator(config) as emu:
            VeniceCredentials(api_key=emu.api_key, base_url=emu.base_url).save("bench")
            request = VideoRequest(
                prompt=REQUEST.prompt, aspect_ratio="16:9", output_dir=str(home / "videos")
            )
            generate_video(request, credentials_block="bench")  # warm-up, not counted
            flow_times, client_times = [], []
            for _ in range(runs):
                started = time.perf_counter()
                generate_video(request, credentials_block="bench")
                flow_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                with VeniceClient(emu.api_key, base_url=emu.base_url, poll=poll) as client:
                    client.validate(REQUEST)
                    client.quote(REQUEST)
                    job = client.queue(REQUEST)
                    client.wait_for_video(job, home / "videos")
                    client.complete(job)
                client_times.append(time.perf_counter() - started)
    finally:
        os.chdir(previous)
        shutil.rmtree(home, ignore_errors=True)
    flow_median = statistics.median(flow_times)
    client_median = statistics.median(client_times)
    return {
        "runs": runs,
        "flow_median_seconds": round(flow_median, 3),
        "client_median_seconds": round(client_median, 3),
        "orchestration_overhead_seconds": round(flow_median - client_median, 3),
        "ratio_flow_over_client": round(flow_median / client_median, 1),
    }
