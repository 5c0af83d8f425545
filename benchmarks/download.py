"""Saving a large video at disk speed: the client's save against `curl` then `sync`.

The emulator runs in a process of its own (as Venice would: its sending costs this
process no GIL), serving a 1 GiB video. On the same URL, with the same request
(POST /video/retrieve, JSON body, bearer header), each round runs every method
once, in an order rotated per round:

  client         VeniceClient.retrieve(job, path): streamed to a temp file, SHA-256,
                 fsync, rename (fresh subprocess, timed inside, peak RSS growth)
  async_client   the same with AsyncVeniceClient
  client_before  VeniceClient as it saved before issue #8, for reference: 64 KiB
                 re-chunked pieces, each written and hashed inline, no early writeback
  httpx_read / httpx_aread
                 the body read with httpx.Client / httpx.AsyncClient and thrown away:
                 what receiving alone costs, below everything the client adds
  aionet_aread   the same with httpx.AsyncClient on the async client's own network
                 backend (prefect_venice._aionet.AsyncioClient)
  curl_sync      `curl -sS -o FILE ...` then `sync` (the issue's baseline)
  curl_syncfile  `curl -sS -o FILE ...` then `sync FILE` (fsync of that file only)
  curl           `curl -sS -o FILE ...` alone: page cache speed, not durable
  curl_null      `curl -sS -o /dev/null ...`: what the emulator can serve at all

Private links take the same comparison on `GET download_url` (link_client: the
client's download(); link_curl_sync), since a few models deliver that way.

Every method writes a fresh file that is deleted afterwards, and an untimed `sync`
runs before each one, so no method pays for another's dirty pages. The page cache
itself is not dropped: the methods write, and no file is read back while timed.

Run: `.venv/bin/python benchmarks/run.py --only download_disk` (or
`.venv/bin/python benchmarks/download.py [--runs N] [--mib N] [--no-link]`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from common import JSON, MIB, REQUEST, max_rss_mib, median

from prefect_venice import QueueRequest

HERE = Path(__file__).resolve()
API_KEY = "bench-key"
PRIVATE_REQUEST = QueueRequest(
    model="grok-imagine-text-to-video-private",
    prompt="A quiet canal at dawn",
    duration="6s",
    aspect_ratio="16:9",
)
RETRIEVE_MODES = (
    "client",
    "async_client",
    "client_before",
    "httpx_read",
    "httpx_aread",
    "aionet_aread",
    "curl_sync",
    "curl_syncfile",
    "curl",
    "curl_null",
)
LINK_MODES = ("link_client", "link_curl_sync")


# --- the emulator, in a process of its own -----------------------------------------------


@contextmanager
def emulator_process(video_bytes: int, home: Path) -> Iterator[tuple[str, int]]:
    """Run `python -m prefect_venice.emulator` on a free port; yield (API base URL, its pid)."""
    command = [
        sys.executable,
        "-m",
        "prefect_venice.emulator",
        "--port=0",
        f"--api-key={API_KEY}",
        f"--video-bytes={video_bytes}",
        "--time-scale=0.001",
        "--seed=1",
        "--no-rate-limits",
        "--no-lockout",
        "--link-max-gets=100000",
        "--link-lifetime=1e12",
    ]
    # cwd: never the repository root, whose bare prefect_venice/ would shadow the package.
    process = subprocess.Popen(
        command, cwd=home, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        found: dict[str, str] = {}
        assert process.stdout is not None
        for line in process.stdout:
            name, _, value = line.partition(":")
            found[name.strip()] = value.strip()
            if name.startswith("Press Ctrl-C"):
                break
        if "Venice emulator API" not in found:
            raise RuntimeError(f"the emulator did not start: {found}")
        yield found["Venice emulator API"], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def queue_jobs(base_url: str) -> tuple[JSON, JSON]:
    """Queue a public job (MP4 from retrieve) and a private one (a link); wait until both end."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        public = http.post("/video/queue", json=REQUEST.to_payload()).raise_for_status().json()
        private = (
            http.post("/video/queue", json=PRIVATE_REQUEST.to_payload()).raise_for_status().json()
        )
        for job in (public, private):
            body = {"model": job["model"], "queue_id": job["queue_id"]}
            for _ in range(600):
                with http.stream("POST", "/video/retrieve", json=body) as answer:
                    answer.raise_for_status()
                    # A finished public job answers the video: its headers say enough, and
                    # closing the stream unread costs the emulator one broken pipe.
                    if answer.headers["content-type"].startswith("video/mp4"):
                        break
                    if answer.read() and answer.json().get("status") == "COMPLETED":
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"job {job['queue_id']} did not finish")
    return public, private


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process used so far, from /proc (0.0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- one method, once ---------------------------------------------------------------------


def _sync() -> None:
    subprocess.run(["sync"], check=True)


def _curl(spec: JSON, output: str, *, link: bool) -> list[str]:
    if link:
        return ["curl", "-sS", "--fail", "-o", output, spec["download_url"]]
    return [
        "curl",
        "-sS",
        "--fail",
        "-o",
        output,
        "-X",
        "POST",
        f"{spec['base_url']}/video/retrieve",
        "-H",
        f"Authorization: Bearer {API_KEY}",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        json.dumps({"model": spec["model"], "queue_id": spec["queue_id"]}),
    ]


def run_curl(mode: str, spec: JSON, destination: Path) -> JSON:
    """Time one curl method from outside (curl's own start-up included, a few ms)."""
    link = mode.startswith("link_")
    output = "/dev/null" if mode == "curl_null" else str(destination)
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run(_curl(spec, output, link=link), check=True)
    fetched = time.perf_counter()
    if mode in ("curl_sync", "link_curl_sync"):
        _sync()
    elif mode == "curl_syncfile":
        subprocess.run(["sync", str(destination)], check=True)
    finished = time.perf_counter()
    cpu = _children_cpu() - cpu
    if output != "/dev/null" and destination.stat().st_size != spec["video_bytes"]:
        raise RuntimeError(f"{mode} wrote {destination.stat().st_size} bytes")
    return {
        "seconds": finished - started,
        "transfer_seconds": fetched - started,
        "cpu_seconds": cpu,
    }


def run_client(mode: str, spec: JSON, destination: Path, env: dict[str, str]) -> JSON:
    """Run one client download in a fresh subprocess (its own peak RSS); return its figures."""
    job = json.dumps({**spec, "dest": str(destination)})
    answer = subprocess.run(
        [sys.executable, str(HERE), "--child", mode, job],
        cwd=destination.parent,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result: JSON = json.loads(answer.stdout.strip().splitlines()[-1])
    if result["size_bytes"] != spec["video_bytes"] or (
        spec.get("sha256") and result["sha256"] not in (spec["sha256"], None)
    ):
        raise RuntimeError(f"{mode} saved something else: {result}")
    return result


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_only(mode: str, spec: JSON) -> JSON:
    """Read the retrieve body with bare httpx and drop it: receiving's own cost."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": spec["model"], "queue_id": spec["queue_id"]}
    url = f"{spec['base_url']}/video/retrieve"
    client_class = httpx.AsyncClient
    if mode == "aionet_aread":  # imported before the clock starts
        from prefect_venice._aionet import AsyncioClient

        client_class = AsyncioClient
    baseline, cpu = max_rss_mib(), _own_cpu()
    started = time.perf_counter()
    size = 0
    if mode == "httpx_read":
        with (
            httpx.Client(headers=headers, timeout=120) as http,
            http.stream("POST", url, json=body) as answer,
        ):
            for piece in answer.iter_bytes():
                size += len(piece)
    else:

        async def read() -> int:
            got = 0
            async with (
                client_class(headers=headers, timeout=120) as http,
                http.stream("POST", url, json=body) as answer,
            ):
                async for piece in answer.aiter_bytes():
                    got += len(piece)
            return got

        size = asyncio.run(read())
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _own_cpu() - cpu,
        "rss_growth_mib": max(0.0, max_rss_mib() - baseline),
        "size_bytes": size,
        "sha256": None,
    }


def child(mode: str, spec: JSON) -> JSON:
    """In a fresh process: one save by the client, timed around the call alone."""
    if mode in ("httpx_read", "httpx_aread", "aionet_aread"):
        return _read_only(mode, spec)
    from prefect_venice import AsyncVeniceClient, QueuedJob, VeniceClient
    from prefect_venice.models import Processing, ReadyAtLink, VideoSaved

    job = QueuedJob(
        model=spec["model"], queue_id=spec["queue_id"], download_url=spec.get("download_url")
    )
    destination = Path(spec["dest"])
    if mode == "async_client":

        async def save() -> JSON:
            async with AsyncVeniceClient(API_KEY, base_url=spec["base_url"]) as client:
                baseline, cpu = max_rss_mib(), _own_cpu()
                started = time.perf_counter()
                saved = await client.retrieve(job, destination)
                seconds = time.perf_counter() - started
                cpu = _own_cpu() - cpu
                return {"seconds": seconds, "cpu": cpu, "baseline": baseline, "saved": saved}

        out = asyncio.run(save())
    else:
        chunk_size = None
        if mode == "client_before":
            import prefect_venice.download as writer_module

            # The save as it was: every piece inline, no writeback hints, 64 KiB pieces.
            writer_module.INLINE_BYTES = 1 << 62
            writer_module._HINT_WRITEBACK = False
            chunk_size = writer_module.CHUNK_SIZE
        with VeniceClient(API_KEY, base_url=spec["base_url"], chunk_size=chunk_size) as client:
            baseline, cpu = max_rss_mib(), _own_cpu()
            started = time.perf_counter()
            result: VideoSaved | Processing | ReadyAtLink
            if mode == "link_client":
                assert job.download_url is not None
                result = client.download(job.download_url, destination, queue_id=job.queue_id)
            else:
                result = client.retrieve(job, destination)
            seconds = time.perf_counter() - started
            cpu = _own_cpu() - cpu
            out = {"seconds": seconds, "cpu": cpu, "baseline": baseline, "saved": result}
    saved = out["saved"]
    if not isinstance(saved, VideoSaved):
        raise RuntimeError(f"not saved: {saved!r}")
    return {
        "seconds": out["seconds"],
        "cpu_seconds": out["cpu"],
        "rss_growth_mib": max(0.0, max_rss_mib() - out["baseline"]),
        "size_bytes": saved.size_bytes,
        "sha256": saved.sha256,
    }


# --- the benchmark ------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def _summary(rows: list[JSON], video_mib: int) -> JSON:
    seconds = median([row["seconds"] for row in rows])
    out: JSON = {
        "median_seconds": round(seconds, 3),
        "median_mib_per_s": round(video_mib / seconds, 1),
        "seconds": [round(row["seconds"], 3) for row in rows],
    }
    if "rss_growth_mib" in rows[0]:
        out["median_rss_growth_mib"] = round(median([r["rss_growth_mib"] for r in rows]), 1)
        out["max_rss_growth_mib"] = round(max(r["rss_growth_mib"] for r in rows), 1)
    out["median_cpu_seconds"] = round(median([r["cpu_seconds"] for r in rows]), 2)
    out["median_emulator_cpu_seconds"] = round(median([r["emulator_cpu_seconds"] for r in rows]), 2)
    if "transfer_seconds" in rows[0]:
        out["median_transfer_seconds"] = round(median([r["transfer_seconds"] for r in rows]), 3)
    return out


def _ratios(results: dict[str, list[JSON]], pairs: list[tuple[str, str]]) -> JSON:
    """Throughput ratios A/B (B's time over A's), of the medians and per round."""
    out: JSON = {}
    for fast, base in pairs:
        a, b = results[fast], results[base]
        out[f"{fast}_over_{base}"] = round(
            median([r["seconds"] for r in b]) / median([r["seconds"] for r in a]), 2
        )
        out[f"{fast}_over_{base}_per_round"] = [
            round(y["seconds"] / x["seconds"], 2) for x, y in zip(a, b, strict=True)
        ]
    return out


def bench_download_disk(runs: int = 5, video_mib: int = 1024, *, link: bool = True) -> JSON:
    """Alternate the client's save with curl (+ sync) on one emulator URL; medians and ratios."""
    video_bytes = video_mib * MIB
    home = Path(tempfile.mkdtemp(prefix="venice-bench-download-"))
    env = dict(os.environ)
    env.update(
        PREFECT_VENICE_HOME=str(home / "venice"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    destination = home / "video.mp4"
    load_before = os.getloadavg()
    try:
        with emulator_process(video_bytes, home) as (base_url, emulator_pid):
            public, private = queue_jobs(base_url)
            spec: JSON = {
                "base_url": base_url,
                "model": public["model"],
                "queue_id": public["queue_id"],
                "video_bytes": video_bytes,
            }
            link_spec: JSON = {
                **spec,
                "model": private["model"],
                "queue_id": private["queue_id"],
                "download_url": private["download_url"],
            }
            # Warm-up (untimed): the files' checksums, which every client save must match.
            for warm in (spec, link_spec) if link else (spec,):
                run_curl("link_curl" if warm is link_spec else "curl", warm, destination)
                warm["sha256"] = _file_sha256(destination)
                destination.unlink()
            modes = list(RETRIEVE_MODES) + (list(LINK_MODES) if link else [])
            results: dict[str, list[JSON]] = {mode: [] for mode in modes}
            loads: list[float] = []
            for round_ in range(runs):
                shift = round_ % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    chosen = link_spec if mode.startswith("link_") else spec
                    _sync()  # nobody's dirty pages are left for the timed method to flush
                    served = cpu_of(emulator_pid)
                    if mode.startswith("curl") or mode == "link_curl_sync":
                        row = run_curl(mode, chosen, destination)
                    else:
                        row = run_client(mode, chosen, destination, env)
                    row["emulator_cpu_seconds"] = cpu_of(emulator_pid) - served
                    destination.unlink(missing_ok=True)
                    results[mode].append(row)
                loads.append(os.getloadavg()[0])
                print(
                    f"round {round_ + 1}/{runs}: "
                    + ", ".join(f"{m} {results[m][-1]['seconds']:.2f} s" for m in modes),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        destination.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(home)], check=False)
    report: JSON = {
        "video_mib": video_mib,
        "runs": runs,
        "directory": str(Path(tempfile.gettempdir())),
        "load_average_1min": {
            "before": round(load_before[0], 1),
            "after_each_round": [round(x, 1) for x in loads],
        },
        "retrieve": {m: _summary(results[m], video_mib) for m in RETRIEVE_MODES},
        "ratios": _ratios(
            results,
            [
                ("client", "curl_sync"),
                ("async_client", "curl_sync"),
                ("client_before", "curl_sync"),
                ("client", "client_before"),
                ("client", "curl_syncfile"),
                ("client", "curl"),
            ],
        ),
    }
    if link:
        report["link"] = {m: _summary(results[m], video_mib) for m in LINK_MODES}
        report["ratios"].update(_ratios(results, [("link_client", "link_curl_sync")]))
    return report


def main() -> None:
    """Run the benchmark alone (or, with --child, one client save) and print JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument("--mib", type=int, default=1024, help="video size in MiB (default: 1024)")
    parser.add_argument("--no-link", action="store_true", help="skip the private-link methods")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], json.loads(args.child[1]))))
        return
    print(json.dumps(bench_download_disk(args.runs, args.mib, link=not args.no_link), indent=2))


if __name__ == "__main__":
    main()
