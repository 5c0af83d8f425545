"""Shared pieces of the benchmarks: the request, a resource sampler, child processes."""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect_venice import QueueRequest

MIB = 1024 * 1024
RUN_PY = Path(__file__).resolve().parent / "run.py"
REQUEST = QueueRequest(
    model="wan-2.5-preview-text-to-video",
    prompt="A gondola gliding through Venice canals at sunset",
    duration="5s",
    resolution="720p",
    aspect_ratio="16:9",
)

JSON = dict[str, Any]


class ChildFailed(RuntimeError):
    """A benchmark subprocess failed or ran out of time; `partial` holds what it reported."""

    def __init__(self, message: str, partial: JSON | None) -> None:
        super().__init__(message)
        self.partial = partial


def _proc_status() -> tuple[int, float]:
    """Return (threads, VmRSS in MiB) of this process from /proc/self/status."""
    threads, rss = 0, 0.0
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
    except OSError:  # not Linux: threads from the interpreter, RSS from getrusage only
        threads = threading.active_count()
    return threads, rss


class Sampler:
    """Samples this process's thread count and RSS from a thread of its own.

    Peaks exclude the sampler's own thread. `stacks=True` also counts, every sample,
    where each thread is (its innermost frame in prefect/prefect_venice/httpx code and
    the innermost frame of all): a poor man's profile of where the time goes.
    """

    def __init__(self, interval: float = 0.02, *, stacks: bool = False) -> None:
        self.interval = interval
        self.stacks = stacks
        self.peak_threads = 0
        self.peak_rss_mib = 0.0
        self.samples = 0
        self.where: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def start(self) -> Sampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (a last sample is taken first)."""
        self._sample()
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        next_stack = 0.0
        while not self._stop.wait(self.interval):
            self._sample()
            if self.stacks and time.monotonic() >= next_stack:
                self._sample_stacks()
                next_stack = time.monotonic() + 0.25

    def _sample(self) -> None:
        threads, rss = _proc_status()
        self.peak_threads = max(self.peak_threads, threads - 1)
        self.peak_rss_mib = max(self.peak_rss_mib, rss)
        self.samples += 1

    def _sample_stacks(self) -> None:
        me = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            entries = traceback.extract_stack(frame)
            if not entries:
                continue
            leaf = entries[-1]
            ours = next(
                (
                    e
                    for e in reversed(entries)
                    if "prefect_venice" in e.filename or "/benchmarks/" in e.filename
                ),
                None,
            )
            label = f"{_short(leaf.filename)}:{leaf.name}"
            if ours is not None and ours is not leaf:
                label = f"{_short(ours.filename)}:{ours.name} > {label}"
            self.where[label] += 1

    def report(self, top: int = 15) -> JSON:
        """Peaks, and (with stacks) the most frequent places threads were seen."""
        out: JSON = {
            "peak_threads": self.peak_threads,
            "peak_rss_mib": round(max_rss_mib(), 1),
            "peak_rss_mib_sampled": round(self.peak_rss_mib, 1),
        }
        if self.stacks:
            total = sum(self.where.values()) or 1
            out["thread_samples_top"] = [
                [label, round(count / total, 3)] for label, count in self.where.most_common(top)
            ]
        return out


def _short(filename: str) -> str:
    """A path short enough to read: from the package, benchmarks/ or the standard library."""
    for marker in ("site-packages/", "-none-any/", "/benchmarks/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    match = re.search(r"python3\.\d+/", filename)
    return filename[match.end() :] if match else filename


def max_rss_mib() -> float:
    """Peak RSS of this process so far, in MiB: VmHWM from /proc/self/status.

    Not ru_maxrss: on Linux a child started from a large parent inherits the parent's
    high-water mark through fork (measured: a 50 MiB script reported the 183 MiB of the
    benchmark process that started it). VmHWM belongs to the process's own memory map.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> JSON:
    """CPU seconds of this process and of its waited-for children (the Prefect server)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_seconds_self": round(own.ru_utime + own.ru_stime, 1),
        "cpu_seconds_children": round(children.ru_utime + children.ru_stime, 1),
    }


def fresh_environment(prefix: str) -> tuple[Path, dict[str, str]]:
    """A temporary folder and an environment with PREFECT_HOME and PREFECT_VENICE_HOME in it."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("PREFECT_INTEGRATIONS_VENICE_") or name == "PREFECT_API_URL":
            del env[name]
    env.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_VENICE_HOME=str(home / "venice"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    return home, env


def run_child(
    kind: str, spec: Mapping[str, Any], *, home: Path, env: Mapping[str, str], timeout: float
) -> JSON:
    """Run `run.py --child KIND SPEC OUT` in a fresh process and return what it wrote to OUT.

    The child writes partial figures to OUT as it goes (a `progress` key), so a run
    stopped at `timeout` still says how far it got: ChildFailed carries that.
    """
    spec_file, out_file, log = home / "spec.json", home / "out.json", home / "child.log"
    spec_file.write_text(json.dumps(spec))
    with log.open("wb") as log_handle:
        # A session of its own, so a run stopped on time takes its Prefect server with it.
        process = subprocess.Popen(
            [sys.executable, str(RUN_PY), "--child", kind, str(spec_file), str(out_file)],
            cwd=home,  # never the repository root: its bare prefect_venice/ shadows the package
            env=dict(env),
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            raise ChildFailed(
                f"{kind} did not finish within {timeout:.0f} s (log: {log})", _read(out_file)
            ) from None
    result = _read(out_file)
    if code != 0 or result is None or "progress" in result:
        tail = log.read_text(errors="replace")[-4000:]
        raise ChildFailed(f"{kind} failed (exit {code}); log tail:\n{tail}", result)
    return result


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """End the child's own process group (the child and the Prefect server it started)."""
    for sig, grace in ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _read(path: Path) -> JSON | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write `data` atomically (a reader never sees half a file)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


@contextmanager
def prefect_server(home: Path) -> Iterator[None]:
    """A temporary Prefect test server for this process, started with `home` as cwd."""
    from prefect.testing.utilities import prefect_test_harness

    previous = os.getcwd()
    os.chdir(home)  # the server must not see the repository's bare prefect_venice/
    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield
    finally:
        os.chdir(previous)


def median(values: list[float]) -> float:
    """The median (statistics.median, typed for floats)."""
    import statistics

    return float(statistics.median(values))


_EMULATOR_CHILD = """
import json, sys
from prefect_venice.emulator import Emulator, EmulatorConfig
with Emulator(EmulatorConfig(**json.loads(sys.argv[1]))) as emu:
    print(json.dumps({"base_url": emu.base_url, "origin": emu.origin}), flush=True)
    sys.stdin.read()  # until the benchmark closes it
"""


class EmulatorProcess:
    """The emulator in a process of its own, as Venice is to its clients.

    In a thread of the benchmark's process it shares the GIL and the machine's
    attention with the client: a poll it answers late reads, at time scale 0.1, as
    ten times that delay of detection lag. Same interface as the figures need:
    `base_url`, `api_key`, `ledger()`, `requests()` (over `/_emulator/...`).
    """

    def __init__(self, **config: Any) -> None:
        from prefect_venice.emulator import EmulatorConfig

        self._config = config
        self.api_key = EmulatorConfig(**config).api_key  # the config's, or its default
        self._process: subprocess.Popen[str] | None = None
        self.base_url = self.origin = ""

    def __enter__(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _EMULATOR_CHILD, json.dumps(self._config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the emulator process did not start")
        started = json.loads(line)
        self.base_url, self.origin = started["base_url"], started["origin"]
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _get(self, path: str) -> Any:
        import httpx

        return httpx.get(self.origin + path, timeout=60).json()

    def ledger(self) -> dict[str, Any]:
        """The emulator's ledger (`GET /_emulator/ledger`)."""
        answer: dict[str, Any] = self._get("/_emulator/ledger")
        return answer

    def requests(self) -> list[dict[str, Any]]:
        """The emulator's request log (`GET /_emulator/requests`)."""
        answer: list[dict[str, Any]] = self._get("/_emulator/requests")["requests"]
        return answer
