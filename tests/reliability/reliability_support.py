"""Helpers of the reliability suite: emulators, the session's record, subprocesses, checks, scans.

Every count the suite asserts comes from the emulator (`Emulator.ledger()`,
`Emulator.requests()`) or from the files on disk, never from what the client says
it did; the client's own account (a VideoResult, the CLI's printed path) is only
compared against them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect_venice.blocks import VeniceCredentials
from prefect_venice.emulator import Emulator, EmulatorConfig
from prefect_venice.emulator.mp4 import make_video
from prefect_venice.journal import JobJournal, JournalEntry

ENABLE_ENV = "VENICE_RELIABILITY"
REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_PATH = REPO_ROOT / "test-output" / "reliability" / "figures.json"

#: Seed of every emulator (fault draws, job durations) and of the suite's own choices.
SEED = 7
#: Jobs take 60-180 emulated seconds: about 0.4-2 s at this scale.
TIME_SCALE = 0.01

PRIVATE_MODEL = "grok-imagine-text-to-video-private"
PUBLIC_MODEL = "wan-2.5-preview-text-to-video"
PRIVATE_FIELDS: dict[str, Any] = {
    "model": PRIVATE_MODEL,
    "duration": "6s",
    "resolution": "480p",
    "aspect_ratio": "16:9",
}
PUBLIC_FIELDS: dict[str, Any] = {"model": PUBLIC_MODEL, "duration": "5s", "aspect_ratio": "16:9"}

#: Poll the emulator's sub-second jobs every few tens of milliseconds.
POLL_ENV = {
    "PREFECT_INTEGRATIONS_VENICE_POLL_MIN_INTERVAL_SECONDS": "0.01",
    "PREFECT_INTEGRATIONS_VENICE_POLL_FIRST_INTERVAL_SECONDS": "0.02",
    "PREFECT_INTEGRATIONS_VENICE_POLL_MAX_INTERVAL_SECONDS": "0.1",
}

BIN = Path(sys.executable).parent
CLI = str(BIN / "prefect-venice")
FLOW_RUNNER = Path(__file__).resolve().parent / "reliability_flow_runner.py"
RESULT_PREFIX = "RESULT "

STAGING = ".venice-staging"


def fields_for(private: bool) -> dict[str, Any]:
    """The request fields of the suite's private or public video."""
    return dict(PRIVATE_FIELDS if private else PUBLIC_FIELDS)


def cli_model_args(private: bool) -> list[str]:
    """`generate` options for the suite's private or public video."""
    spec = fields_for(private)
    args = ["--model", spec["model"], "--duration", spec["duration"]]
    args += ["--aspect-ratio", spec["aspect_ratio"]]
    if "resolution" in spec:
        args += ["--resolution", spec["resolution"]]
    return args


# The session's record ---------------------------------------------------------------


@dataclass
class ReliabilitySession:
    """What the session started and where it wrote: the secrets scan reads all of it."""

    root: Path
    prefect_home: Path
    database: Path
    api_url: str
    api_keys: set[str] = field(default_factory=set)
    link_tokens: set[str] = field(default_factory=set)
    link_origins: set[str] = field(default_factory=set)
    journals: set[Path] = field(default_factory=set)
    outputs: set[Path] = field(default_factory=set)
    queue_ids: set[str] = field(default_factory=set)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def captures(self) -> Path:
        """Captured output of subprocesses and this process's log records."""
        path = self.root / "captures"
        path.mkdir(exist_ok=True)
        return path

    def folder(self, kind: str, name: str) -> Path:
        """A new, not yet existing folder `kind/name-N` (the package creates it, as a user's)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60]
        path = self.root / kind / f"{safe}-{next(self._numbers)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "journals":
            self.journals.add(path)
        elif kind == "homes":
            self.journals.add(path / "jobs")
        else:
            self.outputs.add(path)
        return path

    def capture(self, name: str, text: str) -> Path:
        """Keep a subprocess's output (or any text) among the captures to scan."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:60]
        path = self.captures / f"{next(self._numbers):04d}-{safe}.txt"
        path.write_text(text, encoding="utf-8")
        return path


class Figures:
    """Named counts per case, kept in test-output/reliability/figures.json as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = {}

    def set(self, section: str, key: str, value: Any) -> None:
        """Record one figure."""
        self.data.setdefault(section, {})[key] = value
        self._write()

    def add(self, section: str, key: str, amount: int = 1) -> None:
        """Add to a count."""
        current = self.data.setdefault(section, {}).get(key, 0)
        self.set(section, key, current + amount)

    def lines(self) -> list[str]:
        """The figures as text, one section a line."""
        return [
            f"{section}: " + ", ".join(f"{key}={value}" for key, value in values.items())
            for section, values in self.data.items()
        ]

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")


# Emulators ----------------------------------------------------------------------------


def start_emulator_in(stack: ExitStack, session: ReliabilitySession, **overrides: Any) -> Emulator:
    """Start a seeded emulator with a fresh, recognisable API key; stop it with `stack`."""
    config = EmulatorConfig(
        time_scale=TIME_SCALE, seed=SEED, api_key=f"vk-rel-{secrets.token_hex(16)}"
    )
    emulator = Emulator(dataclasses.replace(config, **overrides)).start()
    session.api_keys.add(emulator.api_key)
    session.link_origins.add(emulator.link_origin)

    def stop() -> None:
        # The emulator's own table of the links it issued (the tokens themselves): the
        # secrets scan looks for each of them everywhere the runs wrote.
        session.link_tokens.update(issued_link_tokens(emulator))
        session.queue_ids.update(emulator.ledger()["jobs"])
        emulator.close()

    stack.callback(stop)
    return emulator


def issued_link_tokens(emulator: Emulator) -> set[str]:
    """Every private-link token the emulator issued (read from the emulator, not the client)."""
    return set(emulator.service._links)


def save_block(emulator: Emulator) -> str:
    """Save a VeniceCredentials block aimed at the emulator; return its name."""
    name = f"rel-{uuid.uuid4().hex[:10]}"
    VeniceCredentials(api_key=emulator.api_key, base_url=emulator.base_url).save(name)
    return name


def charged_jobs(ledger: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ledger's jobs that were charged, by queue id."""
    jobs: dict[str, dict[str, Any]] = ledger["jobs"]
    return {queue_id: job for queue_id, job in jobs.items() if job["charged_usd"] > 0}


def queue_calls(ledger: Mapping[str, Any]) -> int:
    """Every /video/queue request the emulator answered (refused, faulted or charged)."""
    return int(ledger["calls"].get("queue", 0))


def status_count(ledger: Mapping[str, Any], endpoint: str, status: str) -> int:
    """How often `endpoint` answered `status` ("500", "dropped", ...)."""
    return int(ledger["statuses"].get(endpoint, {}).get(status, 0))


def requests_of(emulator: Emulator, endpoint: str) -> list[dict[str, Any]]:
    """The request-log entries of one endpoint, oldest first."""
    return [entry for entry in emulator.requests() if entry["endpoint"] == endpoint]


# Videos on disk -----------------------------------------------------------------------


@functools.cache
def expected_video(private: bool, video_bytes: int | None = None) -> tuple[int, str]:
    """Size and SHA-256 of the MP4 the emulator serves for the suite's private/public request."""
    spec = fields_for(private)
    video = make_video(
        int(spec["duration"].rstrip("s")),
        spec.get("resolution") or "720p",
        spec["aspect_ratio"],
        video_bytes,
    )
    digest = hashlib.sha256()
    for chunk in video.chunks():
        digest.update(chunk)
    return video.size, digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_whole_video(
    path: Path, *, size: int, sha256: str, expected: tuple[int, str]
) -> list[str]:
    """Problems with a saved MP4: not the file the emulator served, or not what was reported."""
    if not path.is_file():
        return [f"{path} is missing"]
    problems = []
    actual_size = path.stat().st_size
    actual_sha = file_sha256(path)
    with path.open("rb") as handle:
        head = handle.read(8)
    if head[4:8] != b"ftyp":
        problems.append(f"{path} has no 'ftyp' box at byte 4")
    if (actual_size, actual_sha) != expected:
        problems.append(f"{path} is not the served MP4 ({actual_size} bytes vs {expected[0]})")
    if (actual_size, actual_sha) != (size, sha256):
        problems.append(f"{path} does not match what the run reported")
    return problems


def leftovers(folder: Path) -> list[Path]:
    """`.part` files and `.venice-staging` folders anywhere under `folder`."""
    if not folder.exists():
        return []
    found = [path for path in folder.rglob("*") if path.name.endswith(".part")]
    found += [path for path in folder.rglob(STAGING) if path.is_dir()]
    return sorted(found)


def mp4s(folder: Path) -> list[Path]:
    """Saved MP4 files in `folder` (not below it)."""
    return sorted(folder.glob("*.mp4")) if folder.exists() else []


# Subprocesses -------------------------------------------------------------------------


#: The journal folder's setting (the flows' and, where honoured, the CLI's).
JOURNAL_DIR_ENV = "PREFECT_INTEGRATIONS_VENICE_JOURNAL_DIR"


def _base_env() -> dict[str, str]:
    # Nothing of this process's own test settings: each command gets its own journal.
    dropped = ("VENICE_", "PREFECT_VENICE_", JOURNAL_DIR_ENV)
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(POLL_ENV)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def cli_env(emulator: Emulator, home: Path) -> dict[str, str]:
    """Environment of a `prefect-venice` command: the key, and a job journal under `home`."""
    env = _base_env()
    env["VENICE_API_KEY"] = emulator.api_key
    env["PREFECT_VENICE_HOME"] = str(home)
    env[JOURNAL_DIR_ENV] = str(home / "jobs")  # the same folder, however the CLI picks it
    return env


def flow_env(session: ReliabilitySession, home: Path) -> dict[str, str]:
    """Environment of a flow run in a subprocess: the session's Prefect server, a journal."""
    env = _base_env()
    env["PREFECT_API_URL"] = session.api_url
    env["PREFECT_HOME"] = str(session.prefect_home)
    env["PREFECT_LOCAL_STORAGE_PATH"] = str(session.prefect_home / "storage")
    # The flows' journal and the CLI's (`prefect-venice jobs ...`) are then the same folder.
    env["PREFECT_VENICE_HOME"] = str(home)
    env[JOURNAL_DIR_ENV] = str(home / "jobs")
    return env


def cli_generate_args(
    emulator: Emulator, *, private: bool, prompt: str, output: Path, job_name: str | None
) -> list[str]:
    """A `prefect-venice generate` command line against the emulator."""
    args = [CLI, "generate", "--prompt", prompt, *cli_model_args(private)]
    args += ["--output", str(output), "--base-url", emulator.base_url, "--max-usd", "1"]
    args += ["--min-poll-interval", "0.01", "--max-wait", "120"]
    if job_name is not None:
        args += ["--job-name", job_name]
    return args


def flow_runner_args(request: Mapping[str, Any], credentials_block: str) -> list[str]:
    """Command line that runs generate_video in a subprocess (reliability_flow_runner.py)."""
    spec = {"request": dict(request), "credentials_block": credentials_block}
    return [sys.executable, str(FLOW_RUNNER), json.dumps(spec)]


def spawn(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Start a command whose output is collected (its own session, so a kill ends only it)."""
    return subprocess.Popen(
        args,
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@dataclass(frozen=True)
class Finished:
    """A finished command: status and output (kept among the session's captures)."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        """The last line of stdout (the CLI prints the saved MP4 there)."""
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def flow_outcome(self) -> dict[str, Any]:
        """What reliability_flow_runner.py printed about the flow run."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                outcome: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return outcome
        raise AssertionError(f"the flow runner printed no result:\n{self.stdout}\n{self.stderr}")


def finish(
    process: subprocess.Popen[str], session: ReliabilitySession, name: str, timeout: float = 180
) -> Finished:
    """Wait for a command, keep its output among the captures, return it."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    session.capture(name, f"$ rc={process.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return Finished(process.returncode, stdout, stderr)


def run(
    args: list[str], env: Mapping[str, str], cwd: Path, session: ReliabilitySession, name: str
) -> Finished:
    """Run a command to its end."""
    return finish(spawn(args, env, cwd), session, name)


def kill_when(
    process: subprocess.Popen[str],
    condition: Callable[[], bool],
    *,
    delay: float = 0.0,
    timeout: float = 120.0,
) -> bool:
    """SIGKILL the process `delay` seconds after `condition` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    if delay > 0:
        time.sleep(delay)
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


# The job journal ----------------------------------------------------------------------


def journal_entry(directory: Path, key: str) -> JournalEntry | None:
    """The journal's record of `key`, read with the package's own reader."""
    return JobJournal(directory).get(key)


def journal_mode_problems(directory: Path) -> list[str]:
    """Where the journal is readable by others: the folder must be 0700, each file 0600."""
    if not directory.exists():
        return []
    problems = []
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode != 0o700:
        problems.append(f"{directory} is {mode:o}, not 700")
    for path in directory.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != 0o600:
            problems.append(f"{path} is {mode:o}, not 600")
    return problems


def journal_records(directory: Path) -> list[dict[str, Any]]:
    """Every record in a journal folder, as JSON (what sits on disk)."""
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["_path"] = str(path)
        records.append(data)
    return records


# Secrets ------------------------------------------------------------------------------

#: A private link's path and token, whatever origin it was printed with.
LINK_PATTERN = re.compile(rb"/v1/share/read/[A-Za-z0-9_-]{16,}")
_RUN = re.compile(rb"[A-Za-z0-9_-]{16,}")


@dataclass(frozen=True)
class Finding:
    """One secret found at rest."""

    where: str
    what: str


class SecretScanner:
    """Finds API keys, link tokens and link paths in files and text, in bounded memory."""

    def __init__(self, secrets_by_label: Mapping[str, Iterable[str]]) -> None:
        self._by_length: dict[int, dict[bytes, str]] = {}
        for label, values in secrets_by_label.items():
            for value in values:
                if len(value) < 16:
                    raise ValueError(f"a {label} of {len(value)} characters is too short to scan")
                if not _RUN.fullmatch(value.encode()):
                    raise ValueError(f"a {label} holds characters the scanner does not look for")
                self._by_length.setdefault(len(value), {})[value.encode()] = label
        self._longest = max(self._by_length, default=16)

    def scan_bytes(self, data: bytes, where: str) -> list[Finding]:
        """Every secret in `data`."""
        found = [
            Finding(where, "a private link path and token") for _ in LINK_PATTERN.finditer(data)
        ]
        for match in _RUN.finditer(data):
            run_ = match.group()
            for length, table in self._by_length.items():
                for start in range(len(run_) - length + 1):
                    label = table.get(run_[start : start + length])
                    if label is not None:
                        found.append(Finding(where, label))
        return found

    def scan_file(self, path: Path) -> list[Finding]:
        """Every secret in a file, read in overlapping chunks."""
        found: list[Finding] = []
        overlap = self._longest + 64
        tail = b""
        offset = 0
        with path.open("rb") as handle:
            while True:
                chunk = handle.read(4 << 20)
                if not chunk:
                    break
                data = tail + chunk
                for finding in self.scan_bytes(data, str(path)):
                    found.append(finding)
                tail = data[-overlap:]
                offset += len(chunk)
        # A secret inside the overlap is seen twice: report each kind once per file.
        return list(dict.fromkeys(found))

    def scan_tree(self, root: Path) -> tuple[int, list[Finding]]:
        """Scan every file under `root`; return how many files were read and what was found."""
        files = 0
        found: list[Finding] = []
        if root.is_file():
            return 1, self.scan_file(root)
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files += 1
                found += self.scan_file(path)
        return files, found
